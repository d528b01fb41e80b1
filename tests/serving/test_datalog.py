"""InferenceLogger: rows batched off the request path, bad rows refused or counted, never lost
silently."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from batchscore.serving import InferenceLogger
from batchscore.storage import Store
from helpers import wait_for

FRAME = pd.DataFrame({"age": [50.0, 61.0, 40.0], "visits": [1, 2, 3]})


def read_all(logger: InferenceLogger, store: Store) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(store.local_path(rel)) for rel in logger.written],
                     ignore_index=True)


def test_requests_are_batched_into_one_file_in_order(ws) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=60)
    logger.log(FRAME, [1.0, 2.0, 3.0], request_id="a", model="m", version="2")
    logger.log(FRAME.iloc[1:2], [4.5], request_id="b", model="m", version="2")
    logger.close()
    assert len(logger.written) == 1 and logger.dropped == 0
    frame = read_all(logger, ws.data)
    assert list(frame.columns) == ["request_id", "logged_at", "model", "version", "age",
                                   "visits", "prediction"]
    assert frame["request_id"].tolist() == ["a", "a", "a", "b"]
    assert frame["age"].tolist() == [50.0, 61.0, 40.0, 61.0]
    assert frame["visits"].tolist() == [1, 2, 3, 2]
    assert frame["prediction"].tolist() == [1.0, 2.0, 3.0, 4.5]
    assert frame["model"].unique().tolist() == ["m"] and frame["version"].unique().tolist() == ["2"]
    assert str(frame["logged_at"].dtype) == "datetime64[us, UTC]"
    stamps = frame.groupby("request_id")["logged_at"].nunique()
    assert stamps.tolist() == [1, 1]  # one time per request


def test_many_requests_of_many_rows_make_one_file(ws) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=60)
    rows = pd.concat([FRAME] * 40, ignore_index=True)  # 120 rows a request
    for i in range(20):
        logger.log(rows, [float(i)] * len(rows), request_id=f"r{i}", model="m", version="1")
        if i == 9:  # the thread takes the first 1,200 rows before the others come
            wait_for(logger._queue.empty, timeout=30, every=0.01)
            assert logger._queue.empty()
    logger.close()
    assert len(logger.written) == 1 and logger.dropped == 0
    frame = read_all(logger, ws.data)
    assert len(frame) == 2400 and frame["request_id"].nunique() == 20


def test_the_logged_frame_is_a_copy(ws) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=60)
    frame = FRAME.copy()
    logger.log(frame, [1.0, 2.0, 3.0], request_id="a", model="m", version="1")
    frame.loc[0, "age"] = -1.0  # the caller reuses its frame
    logger.close()
    assert read_all(logger, ws.data)["age"].tolist() == [50.0, 61.0, 40.0]


@pytest.mark.parametrize(("frame", "predictions", "message"), [
    (FRAME, [1.0], "1 predictions for 3 input rows"),
    (FRAME.assign(model=1.0), [1.0, 2.0, 3.0],
     "input columns ['model'] clash with the log's own columns"),
])
def test_rows_that_do_not_fit_are_refused_at_once(ws, frame, predictions, message) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=60)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        logger.log(frame, predictions, request_id="a", model="m", version="1")
    logger.close()
    assert logger.written == [] and logger.dropped == 0


def test_rows_that_cannot_be_written_are_counted_and_logging_goes_on(ws) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=0.05)
    one = FRAME.iloc[:1]
    logger.log(one, [object()], request_id="y", model="m", version="1")  # no Parquet type
    deadline = time.monotonic() + 30
    while logger.dropped < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert logger.dropped == 1 and logger.written == []
    logger.log(one, [7.0], request_id="z", model="m", version="1")  # the thread still works
    logger.close()
    assert read_all(logger, ws.data)["request_id"].tolist() == ["z"]


def test_a_store_that_fails_drops_and_counts_the_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    logger = InferenceLogger(Store(blocker.as_uri()), flush_seconds=60)
    logger.log(FRAME, [1.0, 2.0, 3.0], request_id="a", model="m", version="1")
    logger.close()
    assert logger.written == [] and logger.dropped == 3


def test_rows_of_two_hours_land_in_two_partitions(ws) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=60)
    stamps = pd.DatetimeIndex(["2026-01-31 23:59:59.9", "2026-02-01 00:00:00",
                               "2026-01-31 23:00:00"], tz="UTC")
    logger._write(FRAME.assign(logged_at=stamps, prediction=[1.0, 2.0, 3.0]))
    logger.close()
    folders = sorted(rel.rsplit("/", 1)[0] for rel in logger.written)
    assert folders == ["inference-logs/dt=2026-01-31/hour=23",
                       "inference-logs/dt=2026-02-01/hour=00"]
    frames = {rel.rsplit("/", 1)[0]: pd.read_parquet(ws.data.local_path(rel))
              for rel in logger.written}
    assert frames["inference-logs/dt=2026-01-31/hour=23"]["prediction"].tolist() == [1.0, 3.0]


@pytest.mark.parametrize("predictions", [
    [[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]],  # integers after floats: one float column
    [[True, False], [True], [False, True, True]],
    [["a", "b"], ["c"], ["d", "e", "f"]],
    [[1.0, 2.0], [True], [3.0, 4.0, 5.0]],  # a boolean among numbers: kept as it is
    [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]], [[7.0, 8.0], [9.0, 0.0], [1.5, 2.5]]],
    [[None, 1.0], [2.0], [3.0, None, 4.0]],
])
def test_predictions_of_every_kind_are_logged_as_given(ws, predictions) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=60)
    for i, values in enumerate(predictions):
        logger.log(pd.concat([FRAME] * 3, ignore_index=True).iloc[:len(values)], values,
                   request_id=f"r{i}", model="m", version="1")
    logger.close()
    assert logger.dropped == 0
    frame = read_all(logger, ws.data)
    expected = [p for values in predictions for p in values]
    logged = [list(p) if hasattr(p, "__len__") and not isinstance(p, str) else p
              for p in frame["prediction"].tolist()]
    assert [None if isinstance(p, float) and p != p else p for p in logged] == expected
    assert frame["request_id"].tolist() == [f"r{i}" for i, v in enumerate(predictions)
                                            for _ in v]
    assert frame.groupby("request_id")["logged_at"].nunique().tolist() == [1] * len(predictions)
