"""Engines for the catalog (SQLite tuned for several threads, PostgreSQL) and migrations."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from cityos.adapters.sql.tables import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that marks a transaction as one that will write (see `_sqlite_begin`).
WRITE_OPTION = "cityos_write"
# Key of the PostgreSQL advisory lock that serialises concurrent `migrate()` calls.
_MIGRATION_LOCK_KEY = 0x636974796F73  # "cityos"


def create_catalog_engine(url: str | URL) -> Engine:
    """Create the engine for a catalog URL (SQLite gets WAL, foreign keys, busy timeout)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    # pre-ping: a pooled connection that died with a database restart is replaced, not used.
    return sa.create_engine(parsed, pool_pre_ping=True)


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) with transactions marked as writing."""
    return engine.execution_options(**{WRITE_OPTION: True})


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not url.query.get("uri"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if in_memory:
        # one shared connection, otherwise each thread would see its own empty database
        options["poolclass"] = StaticPool
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **options,
    )
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from pysqlite (SQLAlchemy's documented recipe) so that
    # `_sqlite_begin` can open writing transactions with BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode (persistent; a no-op once done), retrying a busy switch.

    On a new file, connections opened at the same moment race for the exclusive lock the
    switch needs, and SQLite may answer SQLITE_BUSY at once instead of honouring the busy
    timeout; the loser simply tries again until the timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for the write lock
    # (SQLITE_BUSY at once, busy timeout ignored); BEGIN IMMEDIATE takes it up front.
    immediate = bool(connection.get_execution_options().get(WRITE_OPTION))
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic filter: consider only the catalog's own tables (and everything inside them)."""
    if type_ == "table":
        return name in metadata.tables
    return True


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An Alembic config for the migrations shipped in this package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Run Alembic `upgrade head` in one transaction, serialised against concurrent callers."""
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
        command.upgrade(alembic_config(connection), "head")
