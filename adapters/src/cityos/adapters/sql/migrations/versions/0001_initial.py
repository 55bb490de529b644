"""Initial catalog: devices, sensors, rejections, datasets, facilities.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key() -> sa.types.TypeEngine[str]:
    # identifiers sort bytewise on PostgreSQL whatever the database locale (see tables.py)
    return sa.String().with_variant(sa.String(collation="C"), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the catalog tables."""
    op.create_table(
        "devices",
        sa.Column("id", _key(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("payload_format", sa.String(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("credential_hash", sa.Text(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
    )
    op.create_table(
        "sensors",
        sa.Column("id", _key(), nullable=False),
        sa.Column("device_id", _key(), nullable=False),
        sa.Column("quantity", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("valid_min", sa.Double(), nullable=True),
        sa.Column("valid_max", sa.Double(), nullable=True),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_sensors_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_sensors"),
        sa.UniqueConstraint("device_id", "quantity", name="uq_sensors_device_id_quantity"),
    )
    op.create_table(
        "rejections",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_at", _time(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("device_id", _key(), nullable=True),
        sa.Column("quantity", sa.String(), nullable=True),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
    )
    op.create_index("ix_rejections_received_at", "rejections", ["received_at"])
    op.create_index("ix_rejections_device_id", "rejections", ["device_id"])
    op.create_table(
        "datasets",
        sa.Column("id", _key(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("licence", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("fetched_at", _time(), nullable=False),
        sa.Column("checksum", sa.String(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_table(
        "facilities",
        sa.Column("id", _key(), nullable=False),
        sa.Column("dataset_id", _key(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_kana", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("hazards", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_facilities_dataset_id_datasets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_facilities"),
        sa.UniqueConstraint("dataset_id", "source_key", name="uq_facilities_dataset_id_source_key"),
    )
    op.create_index("ix_facilities_kind", "facilities", ["kind"])


def downgrade() -> None:
    """Drop the catalog tables."""
    op.drop_index("ix_facilities_kind", table_name="facilities")
    op.drop_table("facilities")
    op.drop_table("datasets")
    op.drop_index("ix_rejections_device_id", table_name="rejections")
    op.drop_index("ix_rejections_received_at", table_name="rejections")
    op.drop_table("rejections")
    op.drop_table("sensors")
    op.drop_table("devices")
