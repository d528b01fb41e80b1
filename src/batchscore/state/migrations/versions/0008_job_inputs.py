"""A job's inputs in their own table, and the pending mini-batches found by index.

The ``jobs`` row held the expanded input list as JSON: a million files made it tens of
megabytes, rewritten by every heartbeat and progress update (SQLite rewrites a whole row).
The list now lives in ``job_inputs`` (one row per input, in order) and the ``jobs`` row stays
small; ``jobs.inputs`` keeps ``[]`` for the jobs recorded from now on. The mini-batch index
gains ``idx``, so the runner reads the next pending mini-batches in order without scanning
the finished ones.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CHUNK = 5_000


def upgrade() -> None:
    op.create_table(
        "job_inputs",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("pos", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    )
    op.drop_index("ix_minibatches_state", table_name="minibatches")
    op.create_index("ix_minibatches_state", "minibatches", ["job_id", "state", "idx"])
    conn = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("inputs", sa.JSON))
    inputs = sa.table("job_inputs", sa.column("job_id", sa.String),
                      sa.column("pos", sa.Integer), sa.column("url", sa.Text))
    ids = [r.id for r in conn.execute(sa.select(jobs.c.id))]
    for job_id in ids:  # one job's list at a time: bounded memory
        urls = conn.execute(sa.select(jobs.c.inputs).where(jobs.c.id == job_id)).scalar()
        for start in range(0, len(urls or []), _CHUNK):
            conn.execute(sa.insert(inputs), [
                {"job_id": job_id, "pos": start + i, "url": u}
                for i, u in enumerate(urls[start:start + _CHUNK])])
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(inputs=[]))


def downgrade() -> None:
    conn = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("inputs", sa.JSON))
    inputs = sa.table("job_inputs", sa.column("job_id", sa.String),
                      sa.column("pos", sa.Integer), sa.column("url", sa.Text))
    for job_id in [r.id for r in conn.execute(sa.select(jobs.c.id))]:
        urls = list(conn.execute(sa.select(inputs.c.url).where(inputs.c.job_id == job_id)
                                 .order_by(inputs.c.pos)).scalars())
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(inputs=urls))
    op.drop_index("ix_minibatches_state", table_name="minibatches")
    op.create_index("ix_minibatches_state", "minibatches", ["job_id", "state"])
    op.drop_table("job_inputs")
