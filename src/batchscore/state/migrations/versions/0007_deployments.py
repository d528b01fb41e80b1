"""Batch deployments: an endpoint holds named deployments and a default one.

An endpoint's ``spec`` stays the default deployment's spec (what invoking it runs); an
endpoint created before this revision has no rows here and reads as one deployment named
``default``.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("endpoint", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("created_by", sa.String(100)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("default_deployment", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("default_deployment")
    op.drop_table("deployments")
