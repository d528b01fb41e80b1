"""Throttles on the monotonic clock write (or read) the first time, however long the machine
has been up: ``time.monotonic()`` counts from boot on Linux, so a "last time" of 0.0 made a
machine up for less than the throttle's period drop the first report."""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest

import batchscore.jobs.kinds as kinds_module
import batchscore.jobs.runner as runner_module
from batchscore.jobs import spec_from_mapping
from batchscore.jobs.control import submit_job
from batchscore.jobs.kinds import PartialProgress
from batchscore.paths import progress_file
from batchscore.storage import Store
from batchscore.workspace import Workspace


class FreshBootClock:
    """``time.monotonic`` of a machine booted ``now`` seconds ago."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _with_clock(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType,
                clock: FreshBootClock) -> None:
    """Give ``module`` a ``time`` whose monotonic() is ``clock`` (the real one elsewhere)."""
    fake = types.SimpleNamespace(**{**vars(time), "monotonic": clock})
    monkeypatch.setattr(module, "time", fake)


@pytest.mark.parametrize("uptime", [0.0, 0.2, 5.0])
def test_partial_progress_writes_its_first_report_on_a_fresh_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uptime: float
) -> None:
    clock = FreshBootClock(uptime)
    _with_clock(monkeypatch, kinds_module, clock)
    store = Store(tmp_path.as_uri(), "system")
    partial = PartialProgress(store, "jobs/j/logs", 0, 1, every=3600)
    path = progress_file("jobs/j/logs", 0, 1)
    partial.report(2)
    assert store.read_text(path) == '{"done": 2}'
    clock.now += 3599
    partial.report(5)  # within `every` of the first write: skipped
    assert store.read_text(path) == '{"done": 2}'
    clock.now += 1
    partial.report(7)
    assert store.read_text(path) == '{"done": 7}'


def test_the_runner_reads_progress_at_once_on_a_fresh_boot(
    ws: Workspace, files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "score.py"
    script.write_text("def run(mini_batch):\n    return mini_batch\n")
    spec = spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 4})
    job, _ = submit_job(ws, spec, [str(files(8))], str(tmp_path / "out"))
    clock = FreshBootClock(0.3)
    _with_clock(monkeypatch, runner_module, clock)
    run = runner_module._Run(ws, job, "test-runner", None, "local")
    first, second = run._next(), run._next()  # read from the plan, as the runner does
    assert (first, second) == (0, 1)
    run.running = {0: 1, 1: 1}  # both mini-batches submitted, neither finished
    ws.system.write_text(progress_file(f"jobs/{job.id}/logs", 0, 1), '{"done": 3}')
    assert run._items_in_progress() == 3  # the first read happens at once
    ws.system.write_text(progress_file(f"jobs/{job.id}/logs", 1, 1), '{"done": 2}')
    clock.now += 0.5
    assert run._items_in_progress() == 3  # at most one read a second
    clock.now += 0.5
    assert run._items_in_progress() == 5
