"""The catalog's Alembic migrations build exactly the tables the adapter's metadata defines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from cityos.adapters.sql.catalog import SqlCatalog, create_catalog
from cityos.adapters.sql.engine import alembic_config, include_name
from cityos.adapters.sql.tables import VERSION_TABLE, metadata
from cityos.platform.config import DbSettings, Settings
from cityos.platform.domain.model import Device, Domain


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def catalog(db_url: str) -> Iterator[SqlCatalog]:
    """A catalog on the empty database, not yet migrated."""
    cat = create_catalog(Settings(db=DbSettings(url=db_url)))
    yield cat
    cat.close()


def schema_diff(engine: sa.Engine) -> list[Any]:
    """What Alembic autogenerate would change to make the database match the metadata."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "include_name": include_name,
            },
        )
        return list(compare_metadata(context, metadata))


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def test_migrations_have_a_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1


def test_migrated_schema_matches_the_metadata(catalog: SqlCatalog) -> None:
    assert schema_diff(catalog.engine) != []  # the comparison sees a missing schema
    catalog.migrate()
    assert schema_diff(catalog.engine) == []
    assert current_revision(catalog.engine) == head_revision()
    assert set(sa.inspect(catalog.engine).get_table_names()) == {*metadata.tables, VERSION_TABLE}


def test_migrate_twice_is_a_no_op(catalog: SqlCatalog) -> None:
    catalog.migrate()
    catalog.add_device(
        Device(id="dev-1", name="d", domain=Domain.HEALTH, payload_format="json"), []
    )
    catalog.migrate()
    catalog.migrate()
    assert schema_diff(catalog.engine) == []
    assert current_revision(catalog.engine) == head_revision()
    assert [d.id for d in catalog.list_devices()] == ["dev-1"]


def test_comparison_detects_drift(catalog: SqlCatalog) -> None:
    catalog.migrate()
    with catalog.engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_rejections_device_id"))
    diff = schema_diff(catalog.engine)
    assert [entry[0] for entry in diff] == ["add_index"]
    if catalog.engine.dialect.name == "postgresql":
        # types are compared too, collation included (ids must sort bytewise)
        with catalog.engine.begin() as connection:
            connection.execute(
                sa.text('ALTER TABLE sensors ALTER COLUMN id TYPE varchar COLLATE "POSIX"')
            )
        changes = [entry for group in schema_diff(catalog.engine) for entry in _flat(group)]
        assert ("modify_type", "sensors", "id") in changes


def _flat(group: Any) -> list[tuple[str, str, str]]:
    entries = group if isinstance(group, list) else [group]
    return [(entry[0], entry[2], entry[3]) for entry in entries if entry[0] == "modify_type"]


def test_other_components_tables_are_left_alone(catalog: SqlCatalog) -> None:
    with catalog.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE auth_clients (id VARCHAR PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO auth_clients (id) VALUES ('client-1')"))
    catalog.migrate()
    catalog.migrate()
    assert schema_diff(catalog.engine) == []
    with catalog.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM auth_clients")).scalar_one() == "client-1"


def test_downgrade_to_base_and_upgrade_again(catalog: SqlCatalog, db_url: str) -> None:
    catalog.migrate()
    with catalog.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(sa.inspect(catalog.engine).get_table_names()) <= {VERSION_TABLE}
    # the URL-only path of env.py (as the Alembic command line would use it)
    command.upgrade(alembic_config(url=db_url), "head")
    assert schema_diff(catalog.engine) == []
    catalog.ping()


def test_concurrent_migrations_on_a_fresh_database(db_url: str) -> None:
    catalogs = [create_catalog(Settings(db=DbSettings(url=db_url))) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(cat: SqlCatalog) -> None:
        try:
            cat.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(cat,)) for cat in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert schema_diff(catalogs[0].engine) == []
    finally:
        for cat in catalogs:
            cat.close()
