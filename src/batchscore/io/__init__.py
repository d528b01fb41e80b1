"""Reading and writing data in any store with pandas, pyarrow and SQLAlchemy alone (layer 0:
it knows no job and no domain; both the engine's entry-script kind and the tabular kind use it).

- :mod:`.files`: CSV and Parquet input files, their format, planned into row ranges, read back;
- :mod:`.parquet`: row groups, and Arrow schemas made one;
- :mod:`.csv`: the byte-range scanner;
- :mod:`.sql`: database URLs, engines, snapshots of a query's result;
- :mod:`.sizes`: mini-batch sizes in rows or bytes.
"""
