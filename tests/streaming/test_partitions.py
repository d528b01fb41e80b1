"""Closed partitions: a ``_SUCCESS`` marker, and the stream's hook (its batch endpoint)
invoked once per partition, across restarts."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from stream_helpers import events

from batchscore.pipelines import claim_run, execute_run, get_run
from batchscore.state.tables import pipeline_runs
from batchscore.streaming import consume, get_stream, list_partitions, send_events
from batchscore.streaming import landing as landing_module
from batchscore.streaming.landing import PARTITION_CRASH_POINT

HOUR23 = "date=2018-08-28/hour=23"
HOUR00 = "date=2018-08-29/hour=00"


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[str], str]] = []
        self.fail = fail

    def __call__(self, stream, partition, inputs, output):
        self.calls.append((partition, inputs, output))
        if self.fail:
            raise RuntimeError("the endpoint is down")
        return SimpleNamespace(job_id=f"job-{len(self.calls)}", run_id=f"run-{len(self.calls)}")


def test_each_partition_closes_once_with_its_marker_and_hook(ws, make_stream):
    make_stream("s", window="10min", lateness="5min")
    send_events(ws, "s", events(list(range(0, 5400, 120))))  # 23:00 to 00:28
    hook = Recorder()
    consume(ws, "s", until_idle_s=0.3, on_partition=hook)
    assert [c[0] for c in hook.calls] == [HOUR23]  # 00:xx is not over
    _, inputs, output = hook.calls[0]
    assert inputs == [ws.data.url_of("streams/s/windows", HOUR23, "*.parquet")]
    assert output == ws.data.url_of("streams/s/scored", HOUR23) + "/"
    assert ws.data.exists(f"streams/s/windows/{HOUR23}/_SUCCESS")
    assert not ws.data.exists(f"streams/s/windows/{HOUR00}/_SUCCESS")
    # A restarted consumer does not close it again; the next hour closes when its time is up.
    send_events(ws, "s", events([7200, 7500]))
    consume(ws, "s", until_idle_s=0.3, on_partition=hook)
    assert [c[0] for c in hook.calls] == [HOUR23, HOUR00]
    closed = list_partitions(ws, "s")
    assert [(p["partition_key"], p["job_id"], p["error"]) for p in closed] == [
        (HOUR00, "job-2", None), (HOUR23, "job-1", None)]
    assert get_stream(ws, "s").partitions_closed == 2


def test_a_failing_hook_is_recorded_and_the_stream_goes_on(ws, make_stream):
    make_stream("s", window="10min", lateness="0s")
    send_events(ws, "s", events([0, 3600, 4300]))
    hook = Recorder(fail=True)
    stats = consume(ws, "s", until_idle_s=0.3, on_partition=hook)
    assert stats.windows == 2
    (closed,) = list_partitions(ws, "s")
    assert closed["error"] == "RuntimeError: the endpoint is down" and closed["job_id"] is None
    consume(ws, "s", until_idle_s=0.3, on_partition=hook)
    assert len(hook.calls) == 1  # recorded as closed: not tried again


COUNT_ROWS = """
import pandas as pd


def init():
    pass


def run(mini_batch):
    return [f"{path.rsplit('/', 1)[-1]} {int(pd.read_parquet(path)['count'].sum())}"
            for path in mini_batch]
"""


@pytest.fixture
def counting_endpoint(ws, tmp_path):
    from batchscore.endpoints import create_endpoint
    from batchscore.jobs.spec import spec_from_mapping

    script = tmp_path / "count_rows.py"
    script.write_text(textwrap.dedent(COUNT_ROWS))
    create_endpoint(ws, "counter", spec_from_mapping({
        "name": "counter", "scoring_script": str(script), "mini_batch_size": 10,
        "max_concurrency_per_instance": 1}))
    return "counter"


def runs_keyed(ws, key: str) -> list[dict]:
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(pipeline_runs).where(pipeline_runs.c.run_key == key))]


@pytest.mark.slow
def test_a_closed_partition_invokes_the_endpoint_once(ws, make_stream, counting_endpoint,
                                                      monkeypatch):
    make_stream("s", window="10min", lateness="0s", endpoint="counter",
                endpoint_output="scores")
    send_events(ws, "s", events([*range(0, 3600, 60), 3660], devices=("1", "2")))

    # The consumer dies after invoking the endpoint, before recording the partition closed.
    def crash(name: str) -> None:
        if name == PARTITION_CRASH_POINT:
            raise KeyboardInterrupt

    monkeypatch.setattr(landing_module, "crash_point", crash)
    with pytest.raises(KeyboardInterrupt):
        consume(ws, "s", until_idle_s=0.3, start_endpoint_jobs=False)
    monkeypatch.undo()
    consume(ws, "s", until_idle_s=0.3, start_endpoint_jobs=False)  # closes it again
    (run,) = runs_keyed(ws, f"stream:s:{HOUR23}")  # but invoked once
    (closed,) = list_partitions(ws, "s")
    assert (closed["run_id"], closed["job_id"]) == (run["id"], run["job_id"])
    assert run["params"]["output"] == ws.data.url_of("scores", HOUR23)
    # The service's run slots would take the queued run; here we execute it.
    assert claim_run(ws, run["id"], "test")
    assert execute_run(ws, run["id"]).state == "succeeded", get_run(ws.engine, run["id"]).reason
    lines = ws.data.read_text(f"scores/{HOUR23}/predictions.csv").splitlines()
    assert len(lines) == 6 and sum(int(line.split()[1]) for line in lines) == 120
