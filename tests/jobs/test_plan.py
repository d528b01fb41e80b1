"""Planning: inputs become the same ordered mini-batches every time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.errors import InputError, SpecError
from batchscore.jobs import spec_from_mapping
from batchscore.jobs.plan import PlannedBatch, plan_minibatches, read_table


def spec(**settings: object):  # type: ignore[no-untyped-def]
    return spec_from_mapping(dict(settings))


def csv(path: Path, frame: pd.DataFrame) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return f"file://{path}"


def rows(batches: list[PlannedBatch]) -> list[tuple[str, int, int]]:
    return [(Path(b.items[0]["url"]).name, b.items[0]["start"], b.items[0]["stop"])
            for b in batches]


def test_files_in_chunks_of_mini_batch_size():
    urls = [f"file:///in/f{i:02d}.txt" for i in range(23)]
    batches = plan_minibatches(spec(mini_batch_size=4), urls)
    assert [b.n_items for b in batches] == [4, 4, 4, 4, 4, 3]
    assert [u for b in batches for u in b.items] == urls  # in input order, each once
    assert batches[1] == PlannedBatch(items=urls[4:8], n_items=4)
    assert plan_minibatches(spec(mini_batch_size=100), urls) == [PlannedBatch(urls, 23)]
    assert plan_minibatches(spec(mini_batch_size=1), urls[:2]) == [
        PlannedBatch([urls[0]], 1), PlannedBatch([urls[1]], 1)]
    assert plan_minibatches(spec(), []) == []


def test_files_refuse_sizes_and_partition_keys():
    with pytest.raises(SpecError, match="number of files, not '10kb'"):
        plan_minibatches(spec(mini_batch_size="10kb"), ["file:///a"])
    with pytest.raises(SpecError, match=r"partition_keys need tabular inputs"):
        plan_minibatches(spec(partition_keys=["k"]), ["file:///a"])


def test_csv_rows_never_cross_files(tmp_path):
    a = csv(tmp_path / "a.csv", pd.DataFrame({"x": range(7)}))
    b = csv(tmp_path / "b.csv", pd.DataFrame({"x": range(5)}))
    batches = plan_minibatches(spec(input_format="csv", mini_batch_size=3), [a, b])
    assert rows(batches) == [("a.csv", 0, 3), ("a.csv", 3, 6), ("a.csv", 6, 7),
                             ("b.csv", 0, 3), ("b.csv", 3, 5)]
    assert [x.n_items for x in batches] == [3, 3, 1, 3, 2]
    s = spec(input_format="csv")
    assert read_table(s, a, 3, 6)["x"].tolist() == [3, 4, 5]
    assert read_table(s, a, 3, 6).index.tolist() == [3, 4, 5]
    assert read_table(s, b)["x"].tolist() == list(range(5))


def test_size_gives_a_deterministic_row_count(tmp_path):
    # 1000 rows of exactly 100 bytes and an 8-byte header: 100.008 bytes a row on average,
    # so 10kb (10240 bytes) is 102 rows.
    text = "id,text\n" + "".join(f"{i:04d},{'x' * 94}\n" for i in range(1000))
    path = tmp_path / "fixed.csv"
    path.write_text(text)
    assert path.stat().st_size == 100_008
    url = f"file://{path}"
    batches = plan_minibatches(spec(input_format="csv", mini_batch_size="10kb"), [url])
    assert [b.n_items for b in batches] == [102] * 9 + [82]
    assert rows(batches)[-1] == ("fixed.csv", 918, 1000)
    assert plan_minibatches(spec(input_format="csv", mini_batch_size="10kb"), [url]) == batches
    one = plan_minibatches(spec(input_format="csv", mini_batch_size="1b"), [url])
    assert len(one) == 1000  # never fewer than one row per mini-batch
    whole = plan_minibatches(spec(input_format="csv", mini_batch_size="1mb"), [url])
    assert rows(whole) == [("fixed.csv", 0, 1000)]


def test_parquet_row_counts(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": list(range(25)), "v": [float(i) for i in range(25)]}), path)
    url = f"file://{path}"
    batches = plan_minibatches(spec(input_format="parquet", mini_batch_size=10), [url])
    assert rows(batches) == [("t.parquet", 0, 10), ("t.parquet", 10, 20), ("t.parquet", 20, 25)]
    s = spec(input_format="parquet")
    assert read_table(s, url, 20, 25)["id"].tolist() == [20, 21, 22, 23, 24]
    size = path.stat().st_size
    by_size = plan_minibatches(spec(input_format="parquet", mini_batch_size=f"{size}b"), [url])
    assert rows(by_size) == [("t.parquet", 0, 25)]


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=rf"^input file://{path}: not a readable Parquet file"):
        plan_minibatches(spec(input_format="parquet"), [f"file://{path}"])


def test_partition_keys_group_rows_across_files(tmp_path):
    a = csv(tmp_path / "a.csv", pd.DataFrame({"region": ["n", "s", "n"], "day": [1, 1, 2],
                                              "x": [1, 2, 3]}))
    b = csv(tmp_path / "b.csv", pd.DataFrame({"region": ["s", "n"], "day": [1, 1],
                                              "x": [4, 5]}))
    batches = plan_minibatches(spec(input_format="csv", partition_keys=["region", "day"]),
                               [a, b])
    assert [(b.items[0]["partition"], b.n_items) for b in batches] == [
        ({"region": "n", "day": 1}, 2), ({"region": "n", "day": 2}, 1),
        ({"region": "s", "day": 1}, 2)]
    assert all(b.items[0]["urls"] == [a, b_url] for b, b_url in zip(batches, [b] * 3,
                                                                    strict=True))
    assert all(type(b.items[0]["partition"]["day"]) is int for b in batches)  # plain JSON


def test_partition_key_missing_values_are_one_group(tmp_path):
    url = csv(tmp_path / "a.csv", pd.DataFrame({"g": ["a", None, "b", "a"], "v": range(4)}))
    batches = plan_minibatches(spec(input_format="csv", partition_keys=["g"]), [url])
    assert [(b.items[0]["partition"], b.n_items) for b in batches] == [
        ({"g": "a"}, 2), ({"g": "b"}, 1), ({"g": None}, 1)]


def test_partition_key_column_missing(tmp_path):
    url = csv(tmp_path / "a.csv", pd.DataFrame({"region": ["n"], "x": [1]}))
    with pytest.raises(InputError) as exc:
        plan_minibatches(spec(input_format="csv", partition_keys=["region", "day"]), [url])
    assert str(exc.value) == (f"input {url}: partition key column(s) ['day'] not found; "
                              "columns are ['region', 'x']")


@pytest.mark.parametrize("content", [b"", b"a,b\n"])
@pytest.mark.parametrize("keys", [[], ["a"]])
def test_empty_csv_plans_nothing(tmp_path, content, keys):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert plan_minibatches(spec(input_format="csv", partition_keys=keys),
                            [f"file://{path}"]) == []


def test_empty_csv_beside_others_is_skipped(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    full = csv(tmp_path / "full.csv", pd.DataFrame({"x": range(4)}))
    empty = f"file://{tmp_path / 'empty.csv'}"
    assert rows(plan_minibatches(spec(input_format="csv", mini_batch_size=3), [empty, full])
                ) == [("full.csv", 0, 3), ("full.csv", 3, 4)]


def test_mis_encoded_csv_names_file_encoding_and_byte(tmp_path):
    path = tmp_path / "cafes.csv"
    path.write_bytes(b"name,n\n" + "café,1\n".encode("latin-1") * 3)
    url = f"file://{path}"
    with pytest.raises(InputError) as exc:
        plan_minibatches(spec(input_format="csv"), [url])
    assert str(exc.value) == (f"input {url}: not valid utf-8 text at byte 10 (set "
                              "input_encoding if the file uses another encoding)")
    latin = spec(input_format="csv", input_encoding="latin-1", mini_batch_size=2)
    assert [b.n_items for b in plan_minibatches(latin, [url])] == [2, 1]
    assert read_table(latin, url, 2, 3)["name"].tolist() == ["café"]


def test_bad_byte_found_past_the_first_megabyte(tmp_path):
    path = tmp_path / "big.csv"
    body = "a,b\n" + "x,1\n" * 300_000  # 1.2 MB of ASCII
    path.write_bytes(body.encode() + b"\xe9,2\n")
    with pytest.raises(InputError, match=f"at byte {len(body)} "):
        plan_minibatches(spec(input_format="csv"), [f"file://{path}"])


def test_ragged_csv_is_unreadable(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(InputError, match=rf"^input file://{path}: not a readable CSV file: "):
        plan_minibatches(spec(input_format="csv"), [f"file://{path}"])


def test_rows_with_a_missing_key_reach_run(ws, script, tmp_path):
    from batchscore.jobs import run_job

    url = csv(tmp_path / "a.csv", pd.DataFrame({"g": ["a", None, "b", "a"], "v": range(4)}))
    show = script("""
        def run(mini_batch, mini_batch_context):
            key = mini_batch_context.partition_key_value["g"]
            return [f"{key} {v}" for v in mini_batch["v"]]
    """)
    s = spec_from_mapping({"scoring_script": str(show), "input_format": "csv",
                           "partition_keys": ["g"]})
    job = run_job(ws, s, [url], str(tmp_path / "out"))
    assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 4, 0)
    assert (tmp_path / "out" / "predictions.csv").read_text() == "a 0\na 3\nb 2\nNone 1\n"
