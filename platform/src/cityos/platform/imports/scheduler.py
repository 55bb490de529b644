"""Runs configured connector imports at fixed intervals (the scheduler of `cityos serve`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from cityos.platform.imports.service import import_facilities
from cityos.platform.imports.summary import ImportSummary
from cityos.platform.ports import Catalog, Connector

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ScheduledImport:
    """One connector run on a source, repeated every `every`."""

    connector: Connector
    source: str
    every: timedelta
    licence: str | None = None

    @property
    def label(self) -> str:
        """How logs name this job."""
        return f"{self.connector.name} <- {self.source}"


class ImportScheduler:
    """Runs each job at start, then every interval; a failing job is retried sooner, alone."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        jobs: Sequence[ScheduledImport],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._jobs = list(jobs)
        self._clock = clock
        self._next_run = [0.0] * len(self._jobs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    def start(self) -> None:
        """Start the scheduler thread (does nothing without jobs)."""
        if not self._jobs or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cityos-scheduler", daemon=True)
        self._thread.start()
        log.info("scheduler started with %d import job(s)", len(self._jobs))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the import that is running, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_due(self) -> list[ImportSummary]:
        """Run every job whose time has come; return what the successful ones imported."""
        done: list[ImportSummary] = []
        for index, job in enumerate(self._jobs):
            if self._stop.is_set() or self._clock() < self._next_run[index]:
                continue
            self.runs += 1
            try:
                summary = import_facilities(
                    catalog=self._catalog,
                    connector=job.connector,
                    source=job.source,
                    licence=job.licence,
                )
            except Exception:  # one broken source must not stop the others
                self.failures += 1
                wait = min(job.every, RETRY_AFTER_FAILURE)
                log.exception("import %s failed; retrying in %s", job.label, wait)
                self._next_run[index] = self._clock() + wait.total_seconds()
                continue
            self._next_run[index] = self._clock() + job.every.total_seconds()
            log.info(
                "import %s: %d read, %d inserted, %d updated, %d unchanged, %d withdrawn, "
                "%d skipped, %d rejected",
                job.label,
                summary.read,
                summary.inserted,
                summary.updated,
                summary.unchanged,
                summary.withdrawn,
                summary.skipped,
                summary.rejected,
            )
            done.append(summary)
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            wait = max(0.0, min(self._next_run) - self._clock())
            self._stop.wait(min(wait, 60.0))
