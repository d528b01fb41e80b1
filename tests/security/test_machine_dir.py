"""What batchscore keeps on this machine outside a workspace lives in a folder of this user
alone (``workspace.machine_dir``): a shared temporary folder is writable by every user, and
a folder planted there (a registry download, a scoring script, a model copy) would be loaded
by another user's job. Registry downloads are keyed by the version's identity, so version 1
of a model in one workspace is never served as version 1 of another's."""

from __future__ import annotations

import gc
import os
import stat
import tempfile
import textwrap
import warnings
from pathlib import Path

import pytest

from batchscore.errors import WorkspaceError
from batchscore.registry.assets import resolve_model
from batchscore.registry.models import (
    artifact_location,
    client,
    get_version,
    load_pyfunc,
    use_registry,
)
from batchscore.workspace import Workspace, init_workspace, machine_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")


def test_the_folder_is_made_private_to_this_user(machine_tmp: Path) -> None:
    path = machine_dir("scripts", "x")
    root = machine_tmp / f"batchscore-{os.getuid()}"
    assert path == root / "scripts" / "x" and not path.exists()  # only the root is made
    info = os.lstat(root)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    os.chmod(root, 0o750)  # readable by the group: made private again
    machine_dir()
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700


def test_a_temporary_folder_not_made_yet_is_made(machine_tmp: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(machine_tmp / "not" / "yet"))
    assert machine_dir("x").parent.is_dir()


@pytest.mark.parametrize("plant", ["link", "writable", "other-user"])
def test_a_planted_root_is_refused(machine_tmp: Path, tmp_path: Path, plant: str) -> None:
    root = machine_tmp / f"batchscore-{os.getuid()}"
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    if plant == "link":
        root.symlink_to(elsewhere)
    elif plant == "writable":
        root.mkdir()
        os.chmod(root, 0o777)
    else:
        if os.getuid() != 0:
            pytest.skip("making a folder of another user needs root")
        root.mkdir(mode=0o700)
        os.chown(root, 65534, 65534)
    with pytest.raises(WorkspaceError, match=r"not a private folder of this user .*set TMPDIR"):
        machine_dir("registry")
    assert list(elsewhere.iterdir()) == []


MODEL = '''
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Constant(PythonModel):
    def predict(self, context, model_input, params=None):
        return [VALUE] * len(model_input)


set_model(Constant())
'''


def _register_by_run(ws: Workspace, tmp_path: Path, value: float) -> None:
    """Version 1 of ``constant``, registered from a ``runs:/`` source (downloaded on use)."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    code = tmp_path / f"model_{int(value)}.py"
    code.write_text(textwrap.dedent(MODEL).replace("VALUE", repr(value)))
    folder = tmp_path / f"model-{int(value)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(folder), python_model=str(code), pip_requirements=[],
                                 signature=infer_signature(pd.DataFrame({"a": [1.0]})))
    use_registry(ws)
    c = client(ws)
    c.create_registered_model("constant")
    experiment = c.create_experiment("e", artifact_location=f"{artifact_location(ws)}/e")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), "model")
    c.create_model_version("constant", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)


def test_version_1_of_two_workspaces_are_two_models(machine_tmp: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    import mlflow.pyfunc
    import pandas as pd

    found = []
    for value in (1.0, 2.0):
        ws = init_workspace(tmp_path / f"ws{int(value)}")
        try:
            _register_by_run(ws, tmp_path, value)
            location = resolve_model(ws, "azureml:constant:1").location
            assert location == resolve_model(ws, "azureml:constant:1").location  # cached
            (found_at,) = Path(location.removeprefix("file://")).rglob("MLmodel")
            model = mlflow.pyfunc.load_model(str(found_at.parent))
            found.append(model.predict(pd.DataFrame({"a": [0.0]}))[0])
        finally:
            ws.close()
    assert found == [1.0, 2.0]
    assert {p.name for p in machine_tmp.iterdir()} == {f"batchscore-{os.getuid()}"}


def test_a_served_version_s_download_goes_with_it(machine_tmp: Path, ws: Workspace,
                                                  tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    import pandas as pd

    _register_by_run(ws, tmp_path, 3.0)
    model = load_pyfunc(ws, get_version(ws, "constant/1"))
    assert model.predict(pd.DataFrame({"a": [0.0]}))[0] == 3.0
    copies = [p for p in machine_tmp.iterdir() if p.name.startswith("batchscore-model-")]
    assert len(copies) == 1 and (copies[0] / "MLmodel").is_file()
    del model
    gc.collect()
    assert not copies[0].exists()  # MLflow alone leaves one such copy per load
