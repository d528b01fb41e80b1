"""The control plane: pipeline runs, triggers, the trigger ledger and API tokens.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_key", sa.String(300), unique=True),
        sa.Column("trigger_id", sa.String(40)),
        sa.Column("job_id", sa.String(40)),
        sa.Column("output_url", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("created_by", sa.String(100)),
        sa.Column("runner", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("ix_pipeline_runs_state", "pipeline_runs", ["state"])
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("prefix", sa.Text),
        sa.Column("pattern", sa.String(200)),
        sa.Column("output", sa.Text),
        sa.Column("marker", sa.String(200)),
        sa.Column("settle_seconds", sa.Float, nullable=False),
        sa.Column("cron", sa.String(100)),
        sa.Column("cursor", sa.Float),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "trigger_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trigger_id", sa.String(40), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(40)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("trigger_id", "path", "version", name="uq_trigger_ledger_blob"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used_at", sa.Float),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("trigger_ledger")
    op.drop_table("triggers")
    op.drop_index("ix_pipeline_runs_state", "pipeline_runs")
    op.drop_table("pipeline_runs")
