"""The import scheduler of `cityos serve`, with the real GSI connector and SQLite catalog."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError
from cityos.platform.imports.scheduler import ImportScheduler, ScheduledImport
from cityos.platform.runtime import Runtime

GSI = Path(__file__).resolve().parents[1] / "fixtures" / "gsi-hinanbasho"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    yield runtime
    runtime.close()


def test_jobs_run_at_start_then_at_their_interval(runtime: Runtime, tmp_path: Path) -> None:
    source = tmp_path / "gsi"
    shutil.copytree(GSI, source)
    now = [1000.0]
    scheduler = ImportScheduler(
        catalog=runtime.catalog,
        jobs=[
            ScheduledImport(runtime.connector("gsi-evacuation"), str(source), timedelta(hours=1)),
            ScheduledImport(
                runtime.connector("gsi-evacuation"), str(tmp_path / "missing"), timedelta(hours=1)
            ),
        ],
        clock=lambda: now[0],
    )
    [first] = scheduler.run_due()
    assert (first.read, first.inserted, first.rejected) == (36, 36, 0)
    assert scheduler.failures == 1  # the missing source failed alone
    now[0] += 60
    assert scheduler.run_due() == []  # not due yet; the failed one retries after 5 min
    now[0] += 300
    assert scheduler.run_due() == []
    assert scheduler.failures == 2
    now[0] += 3600
    [again] = scheduler.run_due()
    assert (again.unchanged, again.inserted) == (36, 0)
    assert len(runtime.catalog.list_facilities()) == 36


def test_scheduler_thread_runs_and_stops(runtime: Runtime) -> None:
    scheduler = ImportScheduler(
        catalog=runtime.catalog,
        jobs=[ScheduledImport(runtime.connector("gsi-evacuation"), str(GSI), timedelta(days=1))],
    )
    scheduler.start()
    try:
        for _ in range(200):
            if runtime.catalog.list_facilities():
                break
            time.sleep(0.05)
    finally:
        scheduler.stop(timeout=5)
    assert len(runtime.catalog.list_facilities()) == 36


def test_schedule_from_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CITYOS__CONNECTORS__SCHEDULE",
        f'[{{"connector": "gsi-evacuation", "source": "{GSI}", "every": "6h"}}]',
    )
    monkeypatch.setenv("CITYOS__DATA_DIR", str(tmp_path / "data"))
    from cityos.platform.config import load_settings

    runtime = Runtime.open(load_settings())
    try:
        scheduler = runtime.new_scheduler()
        [summary] = scheduler.run_due()
        assert summary.inserted == 36
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"connector": "no-such-connector", "source": "x"}, "no plugin 'no-such-connector'"),
        ({"connector": "gsi-evacuation", "source": "x", "every": "1mo"}, "no fixed length"),
        ({"connector": "gsi-evacuation", "source": "x", "every": "often"}, "malformed duration"),
    ],
)
def test_bad_schedules_stop_start_up(tmp_path: Path, job: dict[str, str], message: str) -> None:
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "connectors": {"schedule": [job]}}
    )
    runtime = Runtime.open(settings)
    try:
        with pytest.raises(ConfigError, match=message):
            runtime.new_scheduler()
    finally:
        runtime.close()
