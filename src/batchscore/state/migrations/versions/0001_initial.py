"""The first schema: jobs, mini-batches and attempts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, index=True),
        sa.Column("active_key", sa.String(64), unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("output_url", sa.Text, nullable=False),
        sa.Column("overwrite", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("runner", sa.String(200)),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("minibatches_total", sa.Integer, nullable=False),
        sa.Column("items_total", sa.Integer, nullable=False),
        sa.Column("items_succeeded", sa.Integer, nullable=False),
        sa.Column("items_failed", sa.Integer, nullable=False),
    )
    op.create_table(
        "minibatches",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("part", sa.Text),
        sa.Column("items_succeeded", sa.Integer, nullable=False),
        sa.Column("items_failed", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200)),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_minibatches_state", "minibatches", ["job_id", "state"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200)),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("items", sa.Integer),
        sa.Column("error", sa.Text),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_attempts_job", "attempts", ["job_id", "idx"])


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("minibatches")
    op.drop_table("jobs")
