"""The engine's cost stays flat in the size of a job: what makes it so, checked by behaviour.

The runner reads its plan from the state database a chunk at a time, the ``jobs`` row never
holds the list of inputs, parts go to folders of bounded size, and the commit reads the parts
list from the database as it goes. (The figures are benchmarks: ``benchmarks/engine.py
--scaling``; no test here times anything.)
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from batchscore.jobs import list_minibatches, run_job, spec_from_mapping, submit_job
from batchscore.jobs import runner as runner_module
from batchscore.jobs.runner import execute
from batchscore.paths import PARTS_PER_FOLDER, part_path
from batchscore.state import jobs as db
from batchscore.state.tables import job_inputs, jobs
from batchscore.workspace import Workspace

ECHO = """
import os
def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""

FLAKY = """
import os
def run(mini_batch):
    name = os.path.basename(mini_batch[0])
    mark = os.path.join(os.environ["MARKS"], name)
    if name in ("f002.txt", "f007.txt") and not os.path.exists(mark):
        open(mark, "w").close()
        raise RuntimeError("first attempt fails")
    return [name]
"""


def test_the_jobs_row_holds_no_inputs_and_the_job_still_lists_them(ws: Workspace, script,
                                                                    files, tmp_path: Path):
    inputs = files(12)
    spec = spec_from_mapping({"scoring_script": str(script(ECHO)), "mini_batch_size": 5})
    job, created = submit_job(ws, spec, [str(inputs)], str(tmp_path / "out"))
    assert created
    expected = [(inputs / f"f{i:03d}.txt").as_uri() for i in range(12)]
    assert job.inputs == expected
    assert (job.minibatches_total, job.items_total) == (3, 12)
    with ws.engine.connect() as conn:
        assert conn.execute(select(jobs.c.inputs).where(jobs.c.id == job.id)).scalar() == []
        assert conn.execute(select(func.count()).select_from(job_inputs)
                            .where(job_inputs.c.job_id == job.id)).scalar() == 12
    assert db.get_job(ws.engine, job.id, with_inputs=False).inputs == []  # type: ignore[union-attr]
    assert db.list_jobs(ws.engine)[0].inputs == expected
    done = execute(ws, job.id)  # the runner does not read the list back at the end
    assert done.state == "succeeded" and done.inputs == []
    assert db.get_job(ws.engine, job.id).inputs == expected  # type: ignore[union-attr]


def test_the_plan_read_in_chunks_keeps_order_and_retries(ws: Workspace, script, files, marks,
                                                        tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runner_module, "_PLAN_CHUNK", 3)  # 11 mini-batches: 4 reads
    spec = spec_from_mapping({"scoring_script": str(script(FLAKY)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2,
                              "retry_settings": {"max_retries": 2}})
    job = run_job(ws, spec, [str(files(11))], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert lines == [f"f{i:03d}.txt" for i in range(11)]
    attempts = {mb.idx: mb.attempts for mb in list_minibatches(ws, job.id)}
    assert attempts == {i: 2 if i in (2, 7) else 1 for i in range(11)}


def test_resume_reads_only_what_is_pending(ws: Workspace, script, files, tmp_path: Path,
                                           monkeypatch):
    """A job whose first mini-batches are done: the runner reads the plan from the first
    pending one on, and the finished ones are not run again."""
    monkeypatch.setattr(runner_module, "_PLAN_CHUNK", 2)
    spec = spec_from_mapping({"scoring_script": str(script(ECHO)), "mini_batch_size": 1})
    job, _ = submit_job(ws, spec, [str(files(7))], str(tmp_path / "out"))
    parts = ws.system.local_path(f"jobs/{job.id}/parts")
    with ws.engine.begin() as conn:  # the first five finished under an earlier runner
        db.record_attempts(conn, job.id, [db.AttemptRecord(
            i, 1, outcome="ok", state="done", worker="earlier", started_at=1.0,
            finished_at=2.0, items=1, error=None, part=f"jobs/{job.id}/parts/old-{i}.txt",
            items_succeeded=1) for i in range(5)])
    parts.mkdir(parents=True)
    for i in range(5):
        (parts / f"old-{i}.txt").write_text(f"earlier {i}\n")
    read: list[int] = []
    real = db.next_pending

    def spy(engine, job_id, after, limit=1000):  # type: ignore[no-untyped-def]
        batch = real(engine, job_id, after, limit)
        read.extend(mb.idx for mb in batch)
        return batch

    monkeypatch.setattr(db, "next_pending", spy)
    done = execute(ws, job.id)
    assert done.state == "succeeded"
    assert read == [5, 6]
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert lines == [f"earlier {i}" for i in range(5)] + ["f005.txt", "f006.txt"]


def test_parts_go_to_folders_of_bounded_size():
    assert part_path("jobs/j/parts", 0, 1, ".txt") == "jobs/j/parts/00000/00000000-1.txt"
    assert part_path("jobs/j/parts", 12_345, 2, ".parquet") == \
        "jobs/j/parts/00012/00012345-2.parquet"
    names = {part_path("p", i, 1, "").rsplit("/", 1)[0] for i in range(3 * PARTS_PER_FOLDER)}
    assert len(names) == 3


def test_a_local_folder_is_listed_as_expand_inputs_lists_it(tmp_path: Path):
    from batchscore.jobs.listing import list_inputs
    from batchscore.storage import expand_inputs

    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ("b.txt", "a.txt", "sub/c.txt", "sub/deeper/d.txt", ".dot.txt",
                ".hidden/e.txt", "sub/.f.txt"):
        (root / rel).write_text("x")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "g.txt").write_text("x")
    (root / "link").symlink_to(tmp_path / "linked")
    expected = expand_inputs([str(root)])
    assert list_inputs([str(root)]) == expected
    assert list_inputs([str(root) + "/"]) == expand_inputs([str(root) + "/"])
    assert [u.rsplit("/", 1)[-1] for u in expected] == ["a.txt", "b.txt", "link", "c.txt",
                                                        "d.txt"]


def test_a_glob_plans_the_inputs_and_job_key_that_fsspecs_glob_gave(ws: Workspace, script,
                                                                     files, tmp_path: Path):
    """Listing a glob as a stream changes nothing a job is made of: the same input list,
    so the same job key (an unfinished job submitted before is found again)."""
    import fsspec

    from batchscore.jobs.control import _job_key
    from batchscore.jobs.hooks import hook
    from batchscore.storage import to_url

    inputs = files(30)
    (inputs / ".hidden.txt").write_text("x")
    (inputs / "sub").mkdir()
    (inputs / "sub" / "f100.txt").write_text("x")
    pattern = f"{inputs}/f0[0-2]*.txt"
    fs = fsspec.filesystem("file")
    reference = sorted(f"file://{p}" for p in fs.glob(pattern) if fs.isfile(p))
    assert len(reference) == 30
    spec = spec_from_mapping({"scoring_script": str(script(ECHO)), "mini_batch_size": 4})
    out = str(tmp_path / "out")
    job, created = submit_job(ws, spec, [pattern], out)
    assert created and job.inputs == reference
    prepared, _ = hook("prepare")(ws, spec, [pattern])  # as submit_job keys it
    assert job.key == _job_key(prepared, reference, to_url(out))
    again, created = submit_job(ws, spec, [pattern], out)
    assert not created and again.id == job.id


def test_group_commit_counts_nothing_before_it_is_saved(ws: Workspace, script, files, marks,
                                                        tmp_path: Path, monkeypatch):
    """Finished attempts are saved together (one transaction for many when the commit is
    slow compared to the mini-batches), but none counts before its transaction: progress
    never shows more done than the database holds, and a failure is saved in its round, so
    its retry follows a saved record."""
    monkeypatch.setattr(runner_module, "_GROUP_FACTOR", 1e9)  # a window longer than the job
    monkeypatch.setattr(runner_module, "_GROUP_MAX_S", 3600.0)
    saves: list[list[tuple[int, str]]] = []
    real = db.record_attempts

    def spy(conn, job_id, records):  # type: ignore[no-untyped-def]
        saves.append([(r.idx, r.state) for r in records])
        return real(conn, job_id, records)

    monkeypatch.setattr(db, "record_attempts", spy)
    ahead: list[tuple[int, int]] = []

    def progress(snap: runner_module.ProgressSnapshot) -> None:
        saved = db.minibatch_counts(ws.engine, snap.job_id).get("done", 0)
        if snap.minibatches_done > saved:
            ahead.append((snap.minibatches_done, saved))

    spec = spec_from_mapping({"scoring_script": str(script(FLAKY)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2,
                              "retry_settings": {"max_retries": 2}})
    job = run_job(ws, spec, [str(files(30))], str(tmp_path / "out"), progress=progress)
    assert job.state == "succeeded", job.reason
    assert ahead == []
    assert (tmp_path / "out" / "predictions.csv").read_text().splitlines() == [
        f"f{i:03d}.txt" for i in range(30)]
    attempts = {mb.idx: mb.attempts for mb in list_minibatches(ws, job.id)}
    assert attempts == {i: 2 if i in (2, 7) else 1 for i in range(30)}
    recorded = [r for save in saves for r in save]
    assert sorted(recorded) == sorted([(i, "done") for i in range(30)]
                                      + [(2, "pending"), (7, "pending")])
    # grouped: far fewer transactions than attempts (the first, one per failure, the rest)
    assert len(saves) <= 5
    for failed in (2, 7):  # the failed attempt was saved before its retry's record
        first = next(i for i, s in enumerate(saves) if (failed, "pending") in s)
        assert any((failed, "done") in s for s in saves[first + 1:])
