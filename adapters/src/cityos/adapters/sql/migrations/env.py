"""Alembic environment of the catalog: run by `SqlCatalog.migrate()`, no alembic.ini needed.

The caller passes an open connection in `config.attributes["connection"]`; the Alembic CLI
may instead set `sqlalchemy.url`. Only the catalog's own tables are considered, so other
cityos components can keep their tables in the same database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cityos.adapters.sql.engine import create_catalog_engine, include_name, writer
from cityos.adapters.sql.tables import VERSION_TABLE, metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    """Run the migrations online (a given connection, or the configured URL) or offline."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = create_catalog_engine(url)
    try:
        with writer(engine).connect() as opened:
            _configure_and_run(opened)
            opened.commit()
    finally:
        engine.dispose()


run()
