"""SQL catalog adapter: SQLAlchemy 2 tables and Alembic migrations for SQLite and PostgreSQL."""
