"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.influxd import Influxd, running_influxd
from testkit.services import Mosquitto, running_mosquitto, throwaway_postgres_database

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private, anonymous mosquitto on a free port (restartable with .stop()/.start())."""
    with running_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a throwaway database on the test PostgreSQL server."""
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture
def no_cityos_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Clear CITYOS__* variables and run in an empty directory (no stray .env)."""
    import os

    for key in list(os.environ):
        if key.startswith("CITYOS__"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """A private influxd (1.x, no auth) per test module; use `.new_database()` per test."""
    with running_influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server
