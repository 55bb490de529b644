"""Facility sites: rows of several sources that describe the same place share a `site_id`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key() -> sa.types.TypeEngine[str]:
    # identifiers sort bytewise on PostgreSQL whatever the database locale (see tables.py)
    return sa.String().with_variant(sa.String(collation="C"), "postgresql")


def upgrade() -> None:
    """Add facilities.site_id; every existing row is its own site."""
    with op.batch_alter_table("facilities") as batch:
        batch.add_column(sa.Column("site_id", _key(), nullable=True))
    op.execute("UPDATE facilities SET site_id = id")
    with op.batch_alter_table("facilities") as batch:
        batch.alter_column("site_id", existing_type=_key(), nullable=False)
        batch.create_index("ix_facilities_site_id", ["site_id"])


def downgrade() -> None:
    """Drop facilities.site_id (the rows stay, each on its own)."""
    with op.batch_alter_table("facilities") as batch:
        batch.drop_index("ix_facilities_site_id")
        batch.drop_column("site_id")
