"""SQLAlchemy tables of the catalog; they never leave the SQL adapter."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# Deterministic constraint names, so that SQLite and PostgreSQL agree and migrations can
# refer to constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The catalog keeps its own Alembic version table so that other cityos components may share
# the same database with their own migrations.
VERSION_TABLE = "cityos_catalog_version"

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Identifiers sort bytewise on every backend (PostgreSQL's "C" collation, SQLite's BINARY),
# so keyset paging (`id > after`) and `ORDER BY id` agree with Python and with each other
# whatever locale the PostgreSQL database was created with.
Key = sa.String().with_variant(sa.String(collation="C"), "postgresql")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC; always read back as an aware UTC datetime."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and convert aware ones to UTC before storing."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; times must carry a zone")
        utc = value.astimezone(UTC)
        # SQLite has no zone-aware type: store naive UTC text, re-attach UTC when reading.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return stored times as aware UTC datetimes on every backend."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("domain", sa.String(), nullable=False),
    sa.Column("payload_format", sa.String(), nullable=False),
    sa.Column("lat", sa.Double(), nullable=True),
    sa.Column("lon", sa.Double(), nullable=True),
    sa.Column("credential_hash", sa.Text(), nullable=True),
    sa.Column("revoked", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

sensors = sa.Table(
    "sensors",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("device_id", Key, sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("quantity", sa.String(), nullable=False),
    sa.Column("unit", sa.String(), nullable=False),
    sa.Column("domain", sa.String(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("lat", sa.Double(), nullable=True),
    sa.Column("lon", sa.Double(), nullable=True),
    sa.Column("valid_min", sa.Double(), nullable=True),
    sa.Column("valid_max", sa.Double(), nullable=True),
    sa.Column("retired", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("device_id", "quantity"),
)

# Append-only dead letters; device_id is not a foreign key because messages from unknown
# devices are dead-lettered too.
rejections = sa.Table(
    "rejections",
    metadata,
    sa.Column(
        "id",
        # 64-bit on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("topic", sa.Text(), nullable=False),
    sa.Column("device_id", Key, nullable=True, index=True),
    sa.Column("quantity", sa.String(), nullable=True),
    sa.Column("excerpt", sa.Text(), nullable=False),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("licence", sa.Text(), nullable=False),
    sa.Column("public", sa.Boolean(), nullable=False),
    sa.Column("fetched_at", UtcDateTime(), nullable=False),
    sa.Column("checksum", sa.String(), nullable=False),
    sa.Column("row_count", sa.Integer(), nullable=False),
    sa.Column("connector", sa.String(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

facilities = sa.Table(
    "facilities",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("dataset_id", Key, sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("source_key", sa.Text(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False, index=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("name_kana", sa.Text(), nullable=True),
    sa.Column("address", sa.Text(), nullable=True),
    sa.Column("lat", sa.Double(), nullable=False),
    sa.Column("lon", sa.Double(), nullable=False),
    sa.Column("domain", sa.String(), nullable=False),
    sa.Column("hazards", sa.JSON(), nullable=False),
    sa.Column("attributes", sa.JSON(), nullable=False),
    sa.Column("withdrawn", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("dataset_id", "source_key"),
)
