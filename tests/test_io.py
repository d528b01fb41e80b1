"""Readers: CSV byte ranges, Parquet row groups and SQL snapshots read exactly the planned rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.errors import InputError
from batchscore.io import files as readers
from batchscore.io.csv import scan_csv
from batchscore.io.files import file_format, plan_file, read_item
from batchscore.io.parquet import conform, unify_schemas
from batchscore.io.sql import create_db_engine, engine_url, is_database_url, snapshot_query
from batchscore.redact import safe_url
from batchscore.storage import Store


def read_all(url: str, fmt: str, size: int | str, encoding: str = "utf-8") -> pd.DataFrame:
    planned = plan_file(url, fmt, size, encoding)
    frames = [read_item(item, encoding) for item, _ in planned.batches]
    assert [len(f) for f in frames] == [n for _, n in planned.batches]
    return pd.concat(frames) if frames else pd.DataFrame()


TRICKY = (
    'id,text,x\r\n'
    '0,"a, b",1.5\r\n'
    '\r\n'
    '1,"line one\nline two",2.5\r\n'
    '   \n'
    '2,"she said ""hi""",3.5\r\n'
    '3,,4.5\r\n'
    '4,"",5.5\r\n'
    '5,"ends with newline\n",6.5'  # no newline at the end of the file
)


@pytest.mark.parametrize("size", [1, 2, 3, 100, "40b"])
def test_csv_byte_ranges_read_what_pandas_reads(tmp_path, size):
    path = tmp_path / "tricky.csv"
    path.write_bytes(b"\xef\xbb\xbf" + TRICKY.encode())  # a byte-order mark, too
    url = path.as_uri()
    planned = plan_file(url, "csv", size)
    assert all("offset" in item for item, _ in planned.batches)  # the fast path
    assert planned.columns == ["id", "text", "x"] and planned.rows == 6
    whole = pd.read_csv(path)
    got = read_all(url, "csv", size)
    # a mini-batch whose text is all missing reads it as object: compare the values
    pd.testing.assert_frame_equal(got, whole, check_index_type=False, check_dtype=False)
    assert got.index.tolist() == list(range(6))  # row numbers in the file


def test_csv_without_quotes_plans_and_reads_consecutive_rows(tmp_path):
    frame = pd.DataFrame({"a": range(1000), "b": np.linspace(0, 1, 1000)})
    path = tmp_path / "plain.csv"
    frame.to_csv(path, index=False)
    planned = plan_file(path.as_uri(), "csv", 300)
    assert [(i["start"], i["stop"]) for i, _ in planned.batches] == [
        (0, 300), (300, 600), (600, 900), (900, 1000)]
    first = planned.batches[1][0]
    text = path.read_bytes()
    assert text[first["offset"]:].startswith(b"300,")  # a byte range, found once at planning
    pd.testing.assert_frame_equal(read_all(path.as_uri(), "csv", 300), frame)


def test_a_quote_inside_an_unquoted_field_falls_back_to_pandas(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text('name,size\n12" pipe,3\nplain,4\nmore "quoted" words,5\n')
    planned = plan_file(path.as_uri(), "csv", 2)
    assert all("offset" not in item for item, _ in planned.batches)  # the slow, safe path
    pd.testing.assert_frame_equal(read_all(path.as_uri(), "csv", 2), pd.read_csv(path))


def test_a_row_wider_than_the_header_is_an_input_error(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n\n1,2,3\n")
    with pytest.raises(InputError) as exc:
        plan_file(path.as_uri(), "csv", 10)
    assert str(exc.value) == (f"input {path.as_uri()}: not a readable CSV file: data row 1 has "
                              "3 fields, the header has 2")


def test_an_unclosed_quote_is_an_input_error(tmp_path):
    path = tmp_path / "open.csv"
    path.write_text('a,b\n1,"never closed\n2,3\n')
    with pytest.raises(InputError, match="a quoted field is never closed"):
        plan_file(path.as_uri(), "csv", 10)


def test_mis_encoded_csv_names_the_byte(tmp_path):
    path = tmp_path / "cafe.csv"
    path.write_bytes(b"name,n\n" + "café,1\n".encode("latin-1"))
    with pytest.raises(InputError, match="not valid utf-8 text at byte 10"):
        scan_csv(path.as_uri())
    assert read_all(path.as_uri(), "csv", 5, "latin-1")["name"].tolist() == ["café"]


def test_utf16_csv_takes_the_slow_path(tmp_path):
    path = tmp_path / "wide.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_csv(path, index=False,
                                                               encoding="utf-16")
    planned = plan_file(path.as_uri(), "csv", 2, "utf-16")
    assert planned.rows == 3 and "offset" not in planned.batches[0][0]
    assert read_all(path.as_uri(), "csv", 2, "utf-16")["b"].tolist() == ["x", "y", "z"]


def test_empty_and_header_only_csv_plan_nothing(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "head.csv").write_text("a,b\n")
    assert plan_file((tmp_path / "empty.csv").as_uri(), "csv", 5).batches == []
    head = plan_file((tmp_path / "head.csv").as_uri(), "csv", 5)
    assert (head.batches, head.columns) == ([], ["a", "b"])


def test_file_changed_after_planning_is_noticed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n2\n3\n4\n")
    item = plan_file(path.as_uri(), "csv", 2).batches[0][0]
    path.write_text("a\n1\n\n\n4\n")  # same size, fewer rows
    with pytest.raises(InputError, match="the file changed after the job was planned"):
        read_item(item)


def test_parquet_packs_row_groups_and_splits_big_ones(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table({"id": list(range(30)), "v": [float(i) for i in range(30)]})
    with pq.ParquetWriter(path, table.schema) as writer:  # row groups of 4, 4, 20, 2
        for start, n in ((0, 4), (4, 4), (8, 20), (28, 2)):
            writer.write_table(table.slice(start, n))
    planned = plan_file(path.as_uri(), "parquet", 10)
    spans = [(i["row_groups"], i["start"], i["stop"]) for i, _ in planned.batches]
    assert spans == [([0, 1], 0, 8), ([2, 2], 8, 18), ([2, 2], 18, 28), ([3, 3], 28, 30)]
    got = pd.concat(read_item(i) for i, _ in planned.batches)
    assert got["id"].tolist() == list(range(30)) and got.index.tolist() == list(range(30))
    only = read_item(planned.batches[1][0], columns=["v", "missing"])
    assert list(only.columns) == ["v"]  # read what is asked for and present, nothing else


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        plan_file(path.as_uri(), "parquet", 10)


def test_format_comes_from_the_name_or_the_setting():
    assert file_format("file:///d/a.CSV") == "csv"
    assert file_format("s3://b/a.parquet") == "parquet"
    assert file_format("file:///d/a.txt", "csv") == "csv"
    with pytest.raises(InputError, match="cannot tell its format"):
        file_format("file:///d/a.txt")
    with pytest.raises(InputError, match="compressed files cannot be split"):
        file_format("file:///d/a.csv.gz")


def test_database_urls():
    assert is_database_url("sqlite:///x.db")
    assert is_database_url("postgresql+psycopg://u@h/db")
    assert not is_database_url("file:///x.db")
    assert not is_database_url("/data/in.csv")
    assert engine_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"
    assert safe_url("postgresql://scott:tiger@h/db") == "postgresql://scott:***@h/db"


def sqlite_db(path: Path, rows: int = 25) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER, device INTEGER, value REAL)")
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?)",
                         [(i, i % 3, i / 2 if i != 7 else None) for i in range(rows)])
    return f"sqlite:///{path}"


def test_sql_snapshot_is_content_addressed_and_planned_as_row_ranges(tmp_path):
    url = sqlite_db(tmp_path / "in.db")
    system = Store(tmp_path / "system", "system")
    query = "SELECT * FROM readings ORDER BY id"
    snap, rows = snapshot_query(url, query, system, 10)
    again, _ = snapshot_query(url, query, system, 10)
    assert rows == 25 and snap == again and "/snapshots/" in snap
    assert pq.ParquetFile(Store(snap).local_path()).metadata.num_row_groups == 3
    got = read_all(snap, "parquet", 10)
    assert got["id"].tolist() == list(range(25))
    assert np.isnan(got["value"][7]) and got["value"][8] == 4.0
    other, _ = snapshot_query(url, "SELECT * FROM readings WHERE id < 5", system, 10)
    assert other != snap


def test_failing_query_gives_the_database_message(tmp_path):
    url = sqlite_db(tmp_path / "in.db")
    system = Store(tmp_path / "system", "system")
    with pytest.raises(InputError) as exc:
        snapshot_query(url, "SELECT * FROM nowhere", system, 10)
    assert str(exc.value) == f"SQL query on {url} failed: no such table: nowhere"
    assert not system.exists("snapshots")


def test_unreachable_database_hides_the_password(tmp_path):
    system = Store(tmp_path / "system", "system")
    url = "postgresql://reader:s3cret@127.0.0.1:9/db"  # port 9: nothing listens
    with pytest.raises(InputError) as exc:
        snapshot_query(url, "SELECT 1", system, 10)
    message = str(exc.value)
    assert message.startswith("SQL query on postgresql://reader:***@127.0.0.1:9/db failed: ")
    assert "s3cret" not in message and "Traceback" not in message


def test_not_a_database_url(tmp_path):
    with pytest.raises(InputError, match=r"not a usable database URL"):
        create_db_engine("mysql+nodriver://h/db")


def test_schemas_of_parts_are_unified():
    ints = pa.table({"k": pa.array([1, 2]), "s": pa.array(["a", "b"])})
    floats = pa.table({"k": pa.array([1.5, None]), "s": pa.array([1, 2])})
    schema = unify_schemas([ints.schema, floats.schema])
    assert schema.field("k").type == pa.float64() and schema.field("s").type == pa.string()
    assert conform(floats, schema).column("s").to_pylist() == ["1", "2"]
    assert conform(pa.table({"k": [3]}), schema).column("s").to_pylist() == [None]


def test_read_rows_reads_only_the_needed_row_groups(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": list(range(25))}), path, row_group_size=10)
    frame = readers.read_rows(path.as_uri(), "parquet", start=12, stop=22)
    assert frame["id"].tolist() == list(range(12, 22)) and frame.index[0] == 12
