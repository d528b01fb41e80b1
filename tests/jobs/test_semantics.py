"""The job engine's semantics, one behaviour per test, run against every executor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from batchscore.jobs import job_logs, list_minibatches, run_job, spec_from_mapping
from batchscore.jobs.script import model_dirs
from batchscore.state.jobs import list_attempts
from batchscore.workspace import Workspace
from helpers import pid_alive

ECHO = """
    import os
    def init():
        with open(os.path.join(os.environ["MARKS"], f"init-{os.getpid()}"), "a") as fh:
            fh.write("x")
    def run(mini_batch):
        return [f"{os.path.basename(p)} {open(p).read().strip()} {os.getpid()}"
                for p in mini_batch]
"""


def _pids(marks: Path, what: str) -> set[str]:
    """The pids of the workers that left a ``<what>-<pid>`` mark."""
    return {p.name.split("-")[1] for p in marks.glob(f"{what}-*")}


def spec(script: Path, **settings: object):  # type: ignore[no-untyped-def]
    return spec_from_mapping({"scoring_script": str(script), **settings})


def run(ws: Workspace, script: Path, inputs: Path | list[str], out: Path, **settings: object):
    patterns = [str(inputs)] if isinstance(inputs, Path) else inputs
    return run_job(ws, spec(script, **settings), patterns, str(out))


def test_files_in_minibatches_of_size_output_in_input_order(
    ws, executor, script, files, marks, tmp_path
):
    inputs = files(23)
    job = run(ws, script(ECHO), inputs, tmp_path / "out", mini_batch_size=4,
              max_concurrency_per_instance=2)
    assert job.state == "succeeded"
    assert job.minibatches_total == 6  # 4+4+4+4+4+3
    assert [mb.n_items for mb in list_minibatches(ws, job.id)] == [4, 4, 4, 4, 4, 3]
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [[f"f{i:03d}.txt", str(i)] for i in range(23)]
    assert (job.items_succeeded, job.items_failed) == (23, 0)


def test_init_runs_once_per_worker_process(ws, executor, script, files, marks, tmp_path):
    job = run(ws, script(ECHO), files(20), tmp_path / "out", mini_batch_size=1,
              max_concurrency_per_instance=2)
    assert job.state == "succeeded"
    pids = {line.split()[2] for line in (tmp_path / "out/predictions.csv").read_text().splitlines()}
    inits = {p.name.removeprefix("init-"): p.read_text() for p in marks.glob("init-*")}
    assert pids <= set(inits)  # every worker that scored ran init() (a late one may not score)
    assert all(v == "x" for v in inits.values())  # once each, though each ran many mini-batches


def test_run_that_raises_is_retried_then_succeeds(ws, executor, script, files, marks, tmp_path):
    flaky = script("""
        import os
        def run(mini_batch):
            mark = os.path.join(os.environ["MARKS"], "failed-once")
            if any(p.endswith("f003.txt") for p in mini_batch) and not os.path.exists(mark):
                open(mark, "w").close()
                raise ValueError("flaky failure")
            return [os.path.basename(p) for p in mini_batch]
    """)
    job = run(ws, flaky, files(6), tmp_path / "out", mini_batch_size=2)
    assert job.state == "succeeded"
    assert (tmp_path / "out/predictions.csv").read_text().split() == [
        f"f{i:03d}.txt" for i in range(6)]
    outcomes = [(a["idx"], a["attempt"], a["outcome"]) for a in list_attempts(ws.engine, job.id)]
    assert (1, 1, "error") in outcomes and (1, 2, "ok") in outcomes
    errors = job_logs(ws, job.id).errors
    assert "ValueError: flaky failure" in errors and "mini-batch 1 attempt 1" in errors
    failed = next(a for a in list_attempts(ws.engine, job.id) if a["outcome"] == "error")
    assert failed["worker"] and f"on {failed['worker']}" in errors  # which worker failed


def test_retries_exhausted_count_items_failed_within_threshold(
    ws, executor, script, files, tmp_path
):
    broken = script("""
        def run(mini_batch):
            if any(p.endswith("f002.txt") for p in mini_batch):
                raise RuntimeError("always broken")
            return mini_batch
    """)
    job = run(ws, broken, files(6), tmp_path / "out", mini_batch_size=2,
              retry_settings={"max_retries": 2, "timeout": 30}, error_threshold=-1)
    assert job.state == "succeeded"
    assert (job.items_succeeded, job.items_failed) == (4, 2)
    attempts = [a for a in list_attempts(ws.engine, job.id) if a["idx"] == 1]
    assert [a["outcome"] for a in attempts] == ["error", "error", "error"]  # 1 + 2 retries
    lines = (tmp_path / "out/predictions.csv").read_text().split()
    assert [Path(p).name for p in lines] == ["f000.txt", "f001.txt", "f004.txt", "f005.txt"]


def test_error_threshold_exceeded_fails_job_and_says_why(ws, executor, script, files, tmp_path):
    broken = script("""
        def run(mini_batch):
            raise RuntimeError("model exploded")
    """)
    job = run(ws, broken, files(4), tmp_path / "out", mini_batch_size=1,
              retry_settings={"max_retries": 0, "timeout": 30}, error_threshold=1)
    assert job.state == "failed"
    assert "more than error_threshold=1" in job.reason
    assert "RuntimeError: model exploded" in job.reason
    assert not (tmp_path / "out").exists()  # nothing appears at the output location


def test_error_threshold_counts_items_not_minibatches(ws, executor, script, files, tmp_path):
    broken = script("""
        def run(mini_batch):
            if any(p.endswith("f000.txt") for p in mini_batch):
                raise RuntimeError("bad")
            return mini_batch
    """)
    ok = run(ws, broken, files(6), tmp_path / "ok", mini_batch_size=3,
             retry_settings={"max_retries": 0, "timeout": 30}, error_threshold=3)
    assert ok.state == "succeeded" and ok.items_failed == 3
    ko = run(ws, broken, files(6), tmp_path / "ko", mini_batch_size=3,
             retry_settings={"max_retries": 0, "timeout": 30}, error_threshold=2)
    assert ko.state == "failed"


def test_short_return_counts_missing_items_as_failed(ws, executor, script, files, tmp_path):
    short = script("""
        def run(mini_batch):
            return mini_batch[:-1]
    """)
    job = run(ws, short, files(9), tmp_path / "out", mini_batch_size=3)
    assert job.state == "succeeded"
    assert (job.items_succeeded, job.items_failed) == (6, 3)
    assert "returned 2 item(s) for a mini-batch of 3" in job_logs(ws, job.id).errors
    failed = run(ws, short, files(9), tmp_path / "out2", mini_batch_size=3, error_threshold=2)
    assert failed.state == "failed" and "3 item(s) failed" in failed.reason


def test_mini_batch_error_threshold_counts_failed_minibatches(
    ws, executor, script, files, tmp_path
):
    # f000, f001 raise (a failed mini-batch each); the mini-batch of f004 returns nothing
    # for it (short: a failed mini-batch too, as on Azure); the others succeed
    broken = script("""
        def run(mini_batch):
            if any(p.endswith(("f000.txt", "f001.txt")) for p in mini_batch):
                raise RuntimeError("bad file")
            return [p for p in mini_batch if not p.endswith("f004.txt")]
    """)
    retry = {"max_retries": 0, "timeout": 30}
    ok = run(ws, broken, files(6), tmp_path / "ok", mini_batch_size=1, retry_settings=retry,
             mini_batch_error_threshold=3)
    assert ok.state == "succeeded" and ok.items_failed == 3
    ko = run(ws, broken, files(6), tmp_path / "ko", mini_batch_size=1, retry_settings=retry,
             mini_batch_error_threshold=2)
    assert ko.state == "failed"
    assert "mini-batch(es) failed, more than mini_batch_error_threshold=2" in ko.reason
    assert "RuntimeError: bad file" in ko.reason
    assert not (tmp_path / "ko").exists()
    ignored = run(ws, broken, files(6), tmp_path / "all", mini_batch_size=1,
                  retry_settings=retry, mini_batch_error_threshold=-1)
    assert ignored.state == "succeeded"


def test_hung_run_is_killed_replaced_and_retried(ws, executor, script, files, marks, tmp_path):
    hang = script("""
        import os, time
        def run(mini_batch):
            mark = os.path.join(os.environ["MARKS"], "hung")
            if any(p.endswith("f001.txt") for p in mini_batch) and not os.path.exists(mark):
                with open(mark, "w") as fh:
                    fh.write(str(os.getpid()))
                time.sleep(120)
            return [f"{os.path.basename(p)} {os.getpid()}" for p in mini_batch]
    """)
    job = run(ws, hang, files(4), tmp_path / "out", mini_batch_size=1,
              retry_settings={"max_retries": 1, "timeout": 1.5})
    assert job.state == "succeeded"
    hung_pid = (marks / "hung").read_text()
    lines = (tmp_path / "out/predictions.csv").read_text().splitlines()
    assert [line.split()[0] for line in lines] == [f"f{i:03d}.txt" for i in range(4)]
    assert lines[1].split()[1] != hung_pid  # a new worker did it
    assert not pid_alive(int(hung_pid))  # the hung one was killed
    outcomes = [a["outcome"] for a in list_attempts(ws.engine, job.id) if a["idx"] == 1]
    assert outcomes == ["timeout", "ok"]
    assert "retry_settings.timeout=1.5s" in job_logs(ws, job.id).errors


@pytest.mark.parametrize("death", ["os._exit(3)", "ctypes.string_at(0)"])
def test_dead_worker_costs_only_its_minibatch_an_attempt(
    ws, executor, script, files, marks, tmp_path, death
):
    dies = script(f"""
        import ctypes, os
        def run(mini_batch):
            mark = os.path.join(os.environ["MARKS"], "died")
            if any(p.endswith("f002.txt") for p in mini_batch) and not os.path.exists(mark):
                open(mark, "w").close()
                {death}
            return [os.path.basename(p) for p in mini_batch]
    """)
    job = run(ws, dies, files(6), tmp_path / "out", mini_batch_size=1,
              max_concurrency_per_instance=2)
    assert job.state == "succeeded"
    attempts = list_attempts(ws.engine, job.id)
    assert [a["outcome"] for a in attempts if a["idx"] == 2] == ["died", "ok"]
    assert all(a["outcome"] == "ok" for a in attempts if a["idx"] != 2)
    assert (tmp_path / "out/predictions.csv").read_text().split() == [
        f"f{i:03d}.txt" for i in range(6)]


def test_dataframe_rows_space_separated_without_header(ws, executor, script, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"id": range(7), "x": [0.5 * i for i in range(7)]}).to_csv(
        data / "a.csv", index=False)
    pd.DataFrame({"id": range(7, 12), "x": [1.0] * 5}).to_csv(data / "b.csv", index=False)
    double = script("""
        def run(mini_batch):
            out = mini_batch[["id"]].copy()
            out["y"] = mini_batch["x"] * 2
            return out
    """)
    job = run(ws, double, [str(data / "*.csv")], tmp_path / "out", input_format="csv",
              mini_batch_size=3)
    assert job.state == "succeeded"
    assert job.minibatches_total == 3 + 2  # 7 rows -> 3+3+1, 5 rows -> 3+2: no file crossing
    lines = (tmp_path / "out/predictions.csv").read_text().splitlines()
    assert lines[:3] == ["0 0.0", "1 1.0", "2 2.0"]
    assert lines[-1] == "11 2.0" and len(lines) == 12


def test_partitioned_run_gets_context_with_key_values(ws, executor, script, tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"device": ["a", "b", "a", "c", "b"], "v": [1, 2, 3, 4, 5]}).to_csv(
        data, index=False)
    by_device = script("""
        def run(mini_batch, mini_batch_context):
            key = mini_batch_context.partition_key_value["device"]
            return [f"{key} {len(mini_batch)} {mini_batch['v'].sum()}"]
    """)
    job = run(ws, by_device, [str(data)], tmp_path / "out", input_format="csv",
              partition_keys=["device"], error_threshold=-1)
    assert job.state == "succeeded"
    # One line per partition; each partition's mini-batch counts its rows as items.
    assert (tmp_path / "out/predictions.csv").read_text().splitlines() == [
        "a 2 4", "b 2 7", "c 1 4"]


def test_summary_only_writes_no_output_file(ws, executor, script, files, tmp_path):
    job = run(ws, script("def run(mb):\n    return mb\n"), files(3), tmp_path / "out",
              output_action="summary_only")
    assert job.state == "succeeded" and job.items_succeeded == 3
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_environment_of_the_original(ws, executor, script, files, tmp_path):
    model = tmp_path / "models" / "model"
    model.mkdir(parents=True)
    (model / "weights.txt").write_text("42")
    env = script("""
        import os
        def init():
            global weights
            weights = open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model",
                                        "weights.txt")).read()
        def run(mini_batch):
            out = os.environ["AZUREML_BI_OUTPUT_PATH"]
            for p in mini_batch:
                with open(os.path.join(out, os.path.basename(p) + ".done"), "w") as fh:
                    fh.write(weights)
            return [f"{weights} {os.environ['GREETING']}" for _ in mini_batch]
    """)
    job = run(ws, env, files(2), tmp_path / "out", model_dir=str(model),
              environment_variables={"GREETING": "hi"})
    assert job.state == "succeeded"
    assert (tmp_path / "out/predictions.csv").read_text() == "42 hi\n42 hi\n"
    # Files the script wrote to AZUREML_BI_OUTPUT_PATH land in the output folder at the end.
    assert (tmp_path / "out/f000.txt.done").read_text() == "42"


@pytest.mark.parametrize("returned", ["{'a': 1}", "(p for p in mini_batch)", "None"])
def test_run_returning_neither_list_nor_dataframe_fails_clearly(
    ws, executor, script, files, tmp_path, returned
):
    bad = script(f"def run(mini_batch):\n    return {returned}\n")
    job = run(ws, bad, files(3), tmp_path / "out")
    assert job.state == "failed"
    assert "it must return a list (one item per input) or a pandas DataFrame" in job.reason
    assert not (tmp_path / "out").exists()


def test_init_that_raises_fails_job_with_its_traceback(ws, executor, script, files, tmp_path):
    bad = script("""
        def init():
            raise FileNotFoundError("model.pkl is missing")
        def run(mini_batch):
            return mini_batch
    """)
    job = run(ws, bad, files(3), tmp_path / "out")
    assert job.state == "failed"
    assert "loading the scoring script failed" in job.reason
    assert "FileNotFoundError: model.pkl is missing" in job.reason


def test_worker_output_timings_and_overview_are_logged(ws, executor, script, files, tmp_path):
    chatty = script("""
        import sys
        def init():
            print("loading model")
        def run(mini_batch):
            print(f"scoring {len(mini_batch)}")
            print("a warning", file=sys.stderr)
            return mini_batch
    """)
    job = run(ws, chatty, files(5), tmp_path / "out", mini_batch_size=2)
    view = job_logs(ws, job.id)
    stdout = "".join(t for n, t in view.worker_logs.items() if n.endswith("stdout.txt"))
    stderr = "".join(t for n, t in view.worker_logs.items() if n.endswith("stderr.txt"))
    assert "loading model" in stdout and stdout.count("scoring") == 3
    assert "a warning" in stderr
    assert [t["minibatch"] for t in sorted(view.timings, key=lambda t: t["minibatch"])] == [0, 1, 2]
    assert all(t["end"] >= t["start"] and t["worker"] and t["attempt"] == 1
               for t in view.timings)
    assert view.overview["minibatches"] == {"total": 3, "done": 3, "failed": 0, "pending": 0}
    assert view.overview["state"] == "succeeded"
    assert view.events[0]["event"] == "job-created"
    assert view.events[-1]["event"] == "job-finished"


def test_shutdown_is_called_in_each_worker(ws, executor, script, files, marks, tmp_path):
    with_shutdown = script("""
        import os
        def init():
            open(os.path.join(os.environ["MARKS"], f"init-{os.getpid()}"), "w").close()
        def run(mini_batch):
            return mini_batch
        def shutdown():
            open(os.path.join(os.environ["MARKS"], f"shutdown-{os.getpid()}"), "w").close()
    """)
    job = run(ws, with_shutdown, files(4), tmp_path / "out", mini_batch_size=1,
              max_concurrency_per_instance=2)
    assert job.state == "succeeded"
    inits, shutdowns = _pids(marks, "init"), _pids(marks, "shutdown")
    assert inits and shutdowns == inits  # every worker that started was shut down


def test_commit_failure_leaves_the_job_resumable(
    ws, executor, script, files, tmp_path, monkeypatch
):
    from batchscore.jobs import control, get_job, resume_job

    def broken_commit(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("batchscore.jobs.script.commit_output", broken_commit)
    with pytest.raises(OSError, match="disk full"):
        run(ws, script("def run(mb):\n    return mb\n"), files(3), tmp_path / "out")
    job = control.list_jobs(ws)[0]
    assert get_job(ws, job.id).display_state == "interrupted"
    monkeypatch.undo()
    done = resume_job(ws, job.id)
    assert done.state == "succeeded" and (tmp_path / "out/predictions.csv").exists()
    assert {a["outcome"] for a in list_attempts(ws.engine, job.id)} == {"ok"}  # not re-run


def test_workers_run_the_code_snapshot_taken_when_the_job_started(
    ws, executor, script, files, tmp_path
):
    from batchscore.jobs import resume_job, submit_job

    code = tmp_path / "code"
    (code / ".git").mkdir(parents=True)
    (code / ".git" / "big").write_text("not shipped")
    (code / "helper.py").write_text("def label(path):\n    return 'v1 ' + path[-8:]\n")
    (code / "score.py").write_text("import helper\ndef run(mb):\n"
                                   "    return [helper.label(p) for p in mb]\n")
    spec = spec_from_mapping({"code": str(code), "scoring_script": "score.py"})
    job, _ = submit_job(ws, spec, [str(files(2))], str(tmp_path / "out"))
    done = resume_job(ws, job.id)  # the first run takes the snapshot
    assert done.state == "succeeded"
    shipped = ws.system.list(f"jobs/{job.id}/code")
    assert sorted(shipped) == [f"jobs/{job.id}/code/{n}" for n in
                               (".complete", "helper.py", "score.py")]
    assert (tmp_path / "out/predictions.csv").read_text() == "v1 f000.txt\nv1 f001.txt\n"


def test_a_resumed_job_runs_the_code_it_was_started_with(ws, executor, script, files, tmp_path):
    from batchscore.jobs import resume_job, submit_job
    from batchscore.jobs.kinds import get_kind

    path = script("def run(mb):\n    return ['old' for _ in mb]\n")
    spec = spec_from_mapping({"scoring_script": str(path)})
    job, _ = submit_job(ws, spec, [str(files(2))], str(tmp_path / "out"))
    get_kind("script").stage(job.id, spec, ws.system)  # as the first runner did, then died
    path.write_text("def run(mb):\n    return ['new' for _ in mb]\n")
    assert resume_job(ws, job.id).state == "succeeded"
    assert (tmp_path / "out/predictions.csv").read_text() == "old\nold\n"


def test_model_folder_from_a_store_url_is_downloaded_once_per_worker(
    ws, executor, script, files, tmp_path
):
    model = tmp_path / "store" / "models" / "model"
    model.mkdir(parents=True)
    (model / "weights.txt").write_text("7")
    reads = script("""
        import os
        def init():
            global w
            w = open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model",
                                  "weights.txt")).read()
        def run(mb):
            return [w for _ in mb]
    """)
    # local:// is a store URL that is not file://, so workers fetch it as from az:// or s3://
    job = run(ws, reads, files(3), tmp_path / "out", model_dir=f"local://{model}")
    assert job.state == "succeeded", job.reason
    assert (tmp_path / "out/predictions.csv").read_text() == "7\n7\n7\n"
    assert not (model_dirs() / job.id).exists()  # the job's copy went when it ended


def test_stale_model_folders_of_finished_jobs_are_removed(ws, executor, script, files,
                                                         tmp_path):
    model = tmp_path / "store" / "models" / "model"
    model.mkdir(parents=True)
    (model / "weights.txt").write_text("7")
    reads = script("""
        import os
        def run(mb):
            return [open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model",
                                      "weights.txt")).read() for _ in mb]
    """)
    first = run(ws, reads, files(1), tmp_path / "a", model_dir=f"local://{model}")
    assert first.state == "succeeded", first.reason
    left = model_dirs() / first.id / "model"  # as a runner killed before the end leaves it
    left.mkdir(parents=True)
    other = model_dirs() / "job-of-another-workspace" / "model"
    other.mkdir(parents=True, exist_ok=True)
    try:
        failed = run(ws, script("def run(mb):\n    raise ValueError('no')\n"), files(1),
                     tmp_path / "b", model_dir=f"local://{model}",
                     retry_settings={"max_retries": 0, "timeout": 30}, error_threshold=0)
        assert failed.state == "failed"
        assert not left.parent.exists()  # a finished job of this workspace: removed
        assert not (model_dirs() / failed.id).exists()  # a failed job's copy too
        assert other.exists()  # not a job of this workspace: kept
    finally:
        shutil.rmtree(other.parent, ignore_errors=True)


def test_a_code_folder_too_big_to_ship_is_refused(ws, files, tmp_path, monkeypatch):
    from batchscore.errors import ScriptError

    monkeypatch.setattr("batchscore.jobs.script.CODE_LIMIT", 1000)
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def run(mb):\n    return mb\n")
    (code / "weights.bin").write_bytes(b"\0" * 5000)
    spec = spec_from_mapping({"code": str(code), "scoring_script": "score.py"})
    with pytest.raises(ScriptError, match=r"keep models out of code_configuration\.code"):
        run_job(ws, spec, [str(files(1))], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    from batchscore.jobs import list_jobs

    assert list_jobs(ws) == []  # refused before anything was recorded


def test_a_worker_still_starting_when_the_work_runs_out_is_shut_down_if_it_started(
    ws, executor, script, files, marks, tmp_path
):
    slow_second = script("""
        import glob, os, time
        MARKS = os.environ["MARKS"]
        def init():
            try:
                os.close(os.open(os.path.join(MARKS, "first"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                # the second worker is still in init() when the work ends: it waits until
                # the first worker has run all 4 mini-batches (a minute at most)
                deadline = time.monotonic() + 60
                while (len(glob.glob(os.path.join(MARKS, "ran-*"))) < 4
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
            open(os.path.join(MARKS, f"init-{os.getpid()}"), "w").close()
        def run(mb):
            open(os.path.join(MARKS, f"ran-{os.path.basename(mb[0])}"), "w").close()
            return mb
        def shutdown():
            open(os.path.join(os.environ["MARKS"], f"shutdown-{os.getpid()}"), "w").close()
    """)
    job = run(ws, slow_second, files(4), tmp_path / "out", mini_batch_size=1,
              max_concurrency_per_instance=2)
    assert job.state == "succeeded"
    inits, shutdowns = _pids(marks, "init"), _pids(marks, "shutdown")
    assert inits and shutdowns == inits  # init() and shutdown() come in pairs
