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

# ---------------------------------------------------------------- OAuth2 and audit (0002)

oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    # granted scopes, space-separated and sorted (as in an OAuth `scope` parameter)
    sa.Column("scopes", sa.Text(), nullable=False),
    sa.Column("secret_hash", sa.Text(), nullable=False),
    sa.Column("revoked", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("rotated_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

# The authorization server's private keys (JWK JSON). Whoever can read this table can sign
# tokens: protect the database like the keys themselves.
signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", Key, primary_key=True),
    sa.Column("algorithm", sa.String(), nullable=False),
    sa.Column("private_jwk", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("retired_at", UtcDateTime(), nullable=True),
)

# Access tokens revoked before their expiry; purged once they would have expired anyway.
revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("jti", Key, primary_key=True),
    sa.Column("client_id", Key, nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=False),
)

# Append-only audit log; client_id is not a foreign key (anonymous and external callers too).
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("time", UtcDateTime(), nullable=False, index=True),
    sa.Column("client_id", Key, nullable=True, index=True),
    sa.Column("operation", sa.String(), nullable=False),
    sa.Column("resources", sa.JSON(), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Column("source_ip", sa.String(), nullable=True),
)

# ---------------------------------------------------------------- official alerts (0003)

# One row per alert: one kind of warning for one area from its issue to its end. `key`
# groups the alerts of one lineage (the same kind for the same area), `group_key` is what
# one message lists completely; both are looked up when new messages are applied.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("dataset_id", Key, sa.ForeignKey("datasets.id"), nullable=True, index=True),
    sa.Column("key", Key, nullable=False, index=True),
    sa.Column("group_key", Key, nullable=False, index=True),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("kind_code", sa.String(), nullable=True),
    sa.Column("area", Key, nullable=False, index=True),
    sa.Column("area_name", sa.Text(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("drill", sa.Boolean(), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("valid_until", UtcDateTime(), nullable=True),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    sa.Column("reported_at", UtcDateTime(), nullable=True),
    sa.Column("message_id", sa.Text(), nullable=True),
    sa.Column("headline", sa.Text(), nullable=True),
    # [{"at": RFC 3339 UTC, "status": ...}, ...]: every status the alert entered
    sa.Column("timeline", sa.JSON(), nullable=False),
    sa.Column("attributes", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# Where a dataset's connector got to in its source (a feed's validators and seen entries).
import_checkpoints = sa.Table(
    "import_checkpoints",
    metadata,
    sa.Column("dataset_id", Key, sa.ForeignKey("datasets.id"), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
