"""Alembic environment: batchscore runs migrations programmatically on its own engine."""

from alembic import context

from batchscore.state.tables import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
