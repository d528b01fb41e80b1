"""The endpoints package's shared parts: one spec check for endpoints and deployments, one
writer of the endpoints table, the named-table reads shared with connections, and the engine's
hooks that reach the registry by name."""

from __future__ import annotations

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import insert

from batchscore.connections import ConnectionExistsError, create_connection, get_connection
from batchscore.endpoints import (
    EndpointNotFoundError,
    create_bare_endpoint,
    create_deployment,
    get_endpoint,
    tabular_endpoint_spec,
)
from batchscore.endpoints.endpoints import point_default
from batchscore.errors import SpecError
from batchscore.jobs.hooks import hook
from batchscore.registry.assets import prepare_job
from batchscore.registry.envs import start_env
from batchscore.state.named import named_write
from batchscore.state.tables import endpoints
from batchscore.workspace import Workspace


def test_a_deployment_model_in_the_data_store_is_refused_as_an_endpoint_s(ws: Workspace
                                                                         ) -> None:
    folder = ws.data.local_path("models", "m")
    folder.mkdir(parents=True)
    joblib.dump(LinearRegression().fit(pd.DataFrame({"a": [0.0, 1.0]}), [0.0, 1.0]),
                folder / "model.joblib")
    create_bare_endpoint(ws, "e")
    with pytest.raises(SpecError, match="is in \\(or holds\\) the data store"):
        create_deployment(ws, "e", "blue", tabular_endpoint_spec("e", str(folder)))
    assert get_endpoint(ws, "e").spec == {}  # nothing recorded


def test_the_endpoint_default_is_pointed_with_known_columns_only(ws: Workspace) -> None:
    create_bare_endpoint(ws, "e")
    with ws.engine.begin() as conn, pytest.raises(TypeError, match="not name"):
        point_default(conn, "e", "blue", name="other")
    assert get_endpoint(ws, "e").name == "e"


def test_a_missing_name_lists_the_others(ws: Workspace) -> None:
    with pytest.raises(EndpointNotFoundError,
                       match=r"^no endpoint named 'x'; endpoints are \(none yet: "):
        get_endpoint(ws, "x")
    create_bare_endpoint(ws, "b")
    create_bare_endpoint(ws, "a")
    with pytest.raises(EndpointNotFoundError, match=r"^no endpoint named 'x'; endpoints are a, b$"):
        get_endpoint(ws, "x")


def test_a_taken_name_is_the_caller_s_error_and_writes_nothing(ws: Workspace,
                                                                tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_connection(ws, "db", url, description="first")
    with pytest.raises(ConnectionExistsError, match="connection 'db' exists already"):
        create_connection(ws, "db", url, description="second")
    assert get_connection(ws, "db").description == "first"
    taken = SpecError("taken")
    with pytest.raises(SpecError, match=r"^taken$"), named_write(ws.engine, taken) as conn:
        conn.execute(insert(endpoints).values(name="n", spec={}, created_at=0, updated_at=0))
        conn.execute(insert(endpoints).values(name="n", spec={}, created_at=0, updated_at=0))
    with pytest.raises(EndpointNotFoundError):
        get_endpoint(ws, "n")  # the transaction was rolled back


def test_the_engine_reaches_the_registry_by_name() -> None:
    assert hook("prepare") is prepare_job
    assert hook("environment") is start_env
    with pytest.raises(SpecError, match="unknown engine hook 'nope'; known: environment, "
                                        "prepare"):
        hook("nope")
