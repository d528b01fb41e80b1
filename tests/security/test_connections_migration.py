"""The connections table comes with migration 0006, both ways, on SQLite (PostgreSQL: the
connection tests run on a workspace migrated to head)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect

from batchscore.state import create_database
from batchscore.state.db import _alembic_config


def test_migration_0006_both_ways(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    command.upgrade(_alembic_config(engine), "0005")  # a workspace of the previous release
    assert not inspect(engine).has_table("connections")
    engine.dispose()
    engine = create_database(url)  # as opening the workspace does: upgraded to head
    assert inspect(engine).has_table("connections")
    command.downgrade(_alembic_config(engine), "0005")
    assert not inspect(engine).has_table("connections")
    assert inspect(engine).has_table("events")
    engine.dispose()
