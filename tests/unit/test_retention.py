"""Dead-letter retention: the purge cut-off and the sweeper thread."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cityos.adapters.sql.catalog import create_catalog
from cityos.platform.config import Settings
from cityos.platform.domain.errors import RetryableError
from cityos.platform.domain.model import Rejection
from cityos.platform.ingest.retention import RetentionSweeper, purge_old_rejections
from cityos.platform.ports import Catalog

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def catalog_with_ages(tmp_path: Path, ages_days: list[float]) -> Catalog:
    catalog = create_catalog(Settings(data_dir=tmp_path))
    catalog.migrate()
    catalog.record_rejections(
        [
            Rejection(NOW - timedelta(days=age), f"age {age}", "cityos/v1/devices/a1/up", "")
            for age in ages_days
        ]
    )
    return catalog


def test_purge_cut_off_is_days_before_now(tmp_path: Path) -> None:
    catalog = catalog_with_ages(tmp_path, [0, 29.9, 30.1, 400])
    assert purge_old_rejections(catalog, days=30, now=NOW) == 2
    assert sorted(r.reason for r in catalog.list_rejections()) == ["age 0", "age 29.9"]
    assert purge_old_rejections(catalog, days=0, now=NOW) == 0  # 0 keeps everything
    assert len(catalog.list_rejections()) == 2


def test_sweeper_purges_at_start_and_survives_outages(tmp_path: Path) -> None:
    catalog = catalog_with_ages(tmp_path, [1000])
    sweeper = RetentionSweeper(catalog, days=30, interval=0.05)
    sweeper.start()
    try:
        deadline = time.monotonic() + 5
        while catalog.list_rejections() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert catalog.list_rejections() == []
    finally:
        sweeper.stop()

    class Down:
        def purge_rejections(self, *, before: datetime) -> int:
            raise RetryableError("catalog down")

    assert RetentionSweeper(Down(), days=30).sweep() == 0  # type: ignore[arg-type]


def test_sweeper_off_when_retention_is_zero(tmp_path: Path) -> None:
    catalog = catalog_with_ages(tmp_path, [1000])
    sweeper = RetentionSweeper(catalog, days=0, interval=0.01)
    sweeper.start()
    time.sleep(0.1)
    sweeper.stop()
    assert len(catalog.list_rejections()) == 1
