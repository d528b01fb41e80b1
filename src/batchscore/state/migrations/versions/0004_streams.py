"""Streams: definitions, the ledger of landed windows and kept-aside events, closed partitions.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "streams",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("lateness_s", sa.Float, nullable=False),
        sa.Column("aggregates", sa.JSON, nullable=False),
        sa.Column("max_future_s", sa.Float, nullable=False),
        sa.Column("redis_url", sa.Text),
        sa.Column("redis_key", sa.String(300), nullable=False),
        sa.Column("partition_by", sa.String(8), nullable=False),
        sa.Column("endpoint", sa.String(100)),
        sa.Column("endpoint_output", sa.Text),
        sa.Column("created_by", sa.String(100)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("watermark", sa.Float),
        sa.Column("max_event_time", sa.Float),
        sa.Column("events_landed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("windows_landed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("events_late", sa.Integer, nullable=False, server_default="0"),
        sa.Column("events_rejected", sa.Integer, nullable=False, server_default="0"),
        sa.Column("partitions_closed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_landed_at", sa.Float),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_token", sa.String(40)),
        sa.Column("lease_until", sa.Float),
    )
    op.create_table(
        "stream_landings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("window_start", sa.Float),
        sa.Column("partition_key", sa.String(64)),
        sa.Column("partition_end", sa.Float),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("raw_path", sa.Text),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("first_entry", sa.String(48)),
        sa.Column("last_entry", sa.String(48)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(["stream"], ["streams.name"], ondelete="CASCADE"),
        sa.UniqueConstraint("stream", "kind", "window_start", name="uq_stream_landings_window"),
    )
    op.create_index("ix_stream_landings_entries", "stream_landings", ["stream", "last_entry"])
    op.create_index("ix_stream_landings_partition", "stream_landings",
                    ["stream", "kind", "partition_key"])
    op.create_table(
        "stream_partitions",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("partition_key", sa.String(64), primary_key=True),
        sa.Column("partition_end", sa.Float, nullable=False),
        sa.Column("closed_at", sa.Float, nullable=False),
        sa.Column("job_id", sa.String(40)),
        sa.Column("run_id", sa.String(40)),
        sa.Column("error", sa.Text),
        sa.ForeignKeyConstraint(["stream"], ["streams.name"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("stream_partitions")
    op.drop_index("ix_stream_landings_partition", "stream_landings")
    op.drop_index("ix_stream_landings_entries", "stream_landings")
    op.drop_table("stream_landings")
    op.drop_table("streams")
