"""The test kit itself: a private mosquitto and a throwaway PostgreSQL database work."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

from testkit.services import Mosquitto, wait_for_port


def test_private_mosquitto_accepts_connections(mosquitto: Mosquitto) -> None:
    wait_for_port("127.0.0.1", mosquitto.port, timeout=2)
    assert mosquitto.url.endswith(str(mosquitto.port))


def test_throwaway_postgres_database_is_usable(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1
    engine.dispose()
    assert psycopg is not None
