"""One test of "is this a database URL" (``io.sql.is_database_url``), used by the
connections, the endpoints' invocations and the service alike: every SQLAlchemy dialect it
can read (MariaDB's own scheme included) counts, so the REST API refuses each of them as an
input or an output (operators name registered connections, never URLs)."""

from __future__ import annotations

import pytest

from batchscore.connections import create_connection
from batchscore.endpoints.published import data_pointer
from batchscore.errors import InputError, SpecError
from batchscore.io.sql import is_database_url
from batchscore.workspace import Workspace

DATABASES = [
    "sqlite:///x.db", "postgresql://u:p@h/db", "postgresql+psycopg://u@h/db", "postgres://h/db",
    "POSTGRESQL://h/db", "mysql+pymysql://u:p@h/db", "mariadb://u:p@h/db",
    "mariadb+mariadbconnector://h/db", "mssql+pyodbc://h/db", "oracle://h/db",
]
NOT_DATABASES = [
    "", "sqlite", "x.db", "/data/in.csv", "file:///data/in.csv", "az://box/in/",
    "s3://bucket/key", "http://host/x", "connection:warehouse", "incoming/*.parquet",
]


@pytest.mark.parametrize("url", DATABASES)
def test_database_urls_are_recognised(url: str) -> None:
    assert is_database_url(url)


@pytest.mark.parametrize("value", NOT_DATABASES)
def test_other_values_are_not_database_urls(value: str) -> None:
    assert not is_database_url(value)


@pytest.mark.parametrize("url", ["mariadb://u:secret@db.example/sales",
                                 "mysql://u:secret@db.example/sales"])
@pytest.mark.parametrize("what", ["input", "output"])
def test_the_api_refuses_every_database_url(ws: Workspace, url: str, what: str) -> None:
    with pytest.raises(InputError, match=f"^{what} is a database URL; name a connection"):
        data_pointer(ws, url, what)


def test_a_connection_names_a_supported_database(ws: Workspace) -> None:
    with pytest.raises(SpecError, match="dialect 'mariadb' is not supported") as err:
        create_connection(ws, "shop", "mariadb://u:secret@db.example/sales")
    assert "secret" not in str(err.value)
    with pytest.raises(SpecError, match="is not a database URL"):
        create_connection(ws, "shop", "az://box/sales")
