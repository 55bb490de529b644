"""Background reloads of shared state, started lazily by the requests that use it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Refresher:
    """Runs `work` on a daemon thread at most every `interval` seconds, when `maybe()` is called.

    `maybe()` costs one clock read on the request path; the work itself never blocks a request.
    A failing run is logged and retried at the next interval.
    """

    def __init__(
        self,
        work: Callable[[], None],
        *,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._work = work
        self._interval = interval
        self._monotonic = monotonic
        self._due = monotonic() + interval
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def maybe(self) -> None:
        """Start a run if one is due and none is running."""
        if self._monotonic() < self._due:
            return
        with self._lock:
            now = self._monotonic()
            if self._closed or now < self._due or self._thread is not None:
                return
            self._due = now + self._interval
            self._thread = threading.Thread(
                target=self._run, name="cityos-auth-refresh", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            self._work()
        except Exception:  # a database hiccup must not kill later refreshes
            log.warning("refreshing revocations and signing keys failed", exc_info=True)
        finally:
            with self._lock:
                self._thread = None

    def close(self, timeout: float = 5.0) -> None:
        """Start no more runs; wait for one in flight."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
