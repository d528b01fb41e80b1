"""A tabular job leaves nothing in the machine's temporary folder: not its submit's (resolving
a registry reference copies nothing), not its workers' copies of registry models."""

from __future__ import annotations

import pytest

from batchscore import paths
from batchscore.jobs import run_job
from batchscore.tabular import tabular_spec
from helpers import left_in_tmp


@pytest.mark.parametrize("model", ["folder", "registry"])
def test_a_tabular_job_leaves_no_scratch(ws, executor, tmp_path, data, model_dir, registry,
                                         machine_tmp, model):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    spec = tabular_spec(str(model_dir), mini_batch_size=20) if model == "folder" else \
        tabular_spec("models:/single@production", registry_uri=registry.uri,
                     mini_batch_size=20)
    job = run_job(ws, spec, [str(src)], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    assert left_in_tmp(machine_tmp) == []
    scratch = ws.system.local_path(paths.job_dir(job.id)) / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []
