"""Connections: the databases an admin registered, the only ones the REST API lets callers
name (their URLs never leave the server).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("dialect", sa.String(32), nullable=False),
        sa.Column("statement_timeout", sa.Float, nullable=False),
        sa.Column("max_rows", sa.Integer, nullable=False),
        sa.Column("allow_output", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connections")
