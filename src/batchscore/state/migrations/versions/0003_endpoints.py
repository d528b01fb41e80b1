"""Batch endpoints: a name bound to a scorer and default job settings.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("created_by", sa.String(100)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("endpoints")
