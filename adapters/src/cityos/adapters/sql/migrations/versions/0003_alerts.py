"""Official alerts (JMA warnings) and connector checkpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key() -> sa.types.TypeEngine[str]:
    # identifiers sort bytewise on PostgreSQL whatever the database locale (see tables.py)
    return sa.String().with_variant(sa.String(collation="C"), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the alerts and import_checkpoints tables."""
    op.create_table(
        "alerts",
        sa.Column("id", _key(), nullable=False),
        sa.Column("dataset_id", _key(), nullable=True),
        sa.Column("key", _key(), nullable=False),
        sa.Column("group_key", _key(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("kind_code", sa.String(), nullable=True),
        sa.Column("area", _key(), nullable=False),
        sa.Column("area_name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("issued_at", _time(), nullable=False),
        sa.Column("valid_until", _time(), nullable=True),
        sa.Column("ended_at", _time(), nullable=True),
        sa.Column("reported_at", _time(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("headline", sa.Text(), nullable=True),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_alerts_dataset_id_datasets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_dataset_id", "alerts", ["dataset_id"])
    op.create_index("ix_alerts_key", "alerts", ["key"])
    op.create_index("ix_alerts_group_key", "alerts", ["group_key"])
    op.create_index("ix_alerts_area", "alerts", ["area"])
    op.create_index("ix_alerts_issued_at", "alerts", ["issued_at"])
    op.create_table(
        "import_checkpoints",
        sa.Column("dataset_id", _key(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_import_checkpoints_dataset_id_datasets"
        ),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_import_checkpoints"),
    )


def downgrade() -> None:
    """Drop the alerts and import_checkpoints tables."""
    op.drop_table("import_checkpoints")
    op.drop_index("ix_alerts_issued_at", table_name="alerts")
    op.drop_index("ix_alerts_area", table_name="alerts")
    op.drop_index("ix_alerts_group_key", table_name="alerts")
    op.drop_index("ix_alerts_key", table_name="alerts")
    op.drop_index("ix_alerts_dataset_id", table_name="alerts")
    op.drop_table("alerts")
