"""Dead-letter retention: delete records older than the configured number of days."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from cityos.platform.domain.errors import CityosError
from cityos.platform.ports import Catalog

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 3600.0


def purge_old_rejections(catalog: Catalog, *, days: int, now: datetime | None = None) -> int:
    """Delete dead-letter records older than `days` days (0 keeps all); how many went."""
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return catalog.purge_rejections(before=cutoff)


class RetentionSweeper:
    """A daemon thread that purges old dead-letter records now and then every interval."""

    def __init__(
        self, catalog: Catalog, *, days: int, interval: float = SWEEP_INTERVAL_SECONDS
    ) -> None:
        self._catalog = catalog
        self._days = days
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sweeping (nothing to do when retention is off)."""
        if self._days <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cityos-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def sweep(self) -> int:
        """Purge once; a catalog outage is logged and retried at the next interval."""
        try:
            deleted = purge_old_rejections(self._catalog, days=self._days)
        except CityosError as exc:
            log.warning("could not purge old dead-letter records (retrying later): %s", exc)
            return 0
        if deleted:
            log.info("purged %d dead-letter records older than %d days", deleted, self._days)
        return deleted

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sweep()
            self._stop.wait(self._interval)
