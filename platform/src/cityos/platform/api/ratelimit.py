"""Per-caller request rate limits (moving window), in process memory or shared through Redis."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

import limits
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from cityos.platform.domain.errors import ConfigError

log = logging.getLogger(__name__)

KEY_PREFIX = "cityos-ratelimit"
"""Prefix of the counters' keys in Redis."""
REDIS_TIMEOUT_SECONDS = 0.5
"""A Redis that does not answer within this long is treated as down (requests pass)."""
_WARN_EVERY_SECONDS = 60.0


class RateLimited(Exception):
    """The caller spent its request budget: HTTP 429 with Retry-After."""

    def __init__(self, retry_after: int, rate: str) -> None:
        super().__init__(f"rate limit exceeded ({rate}); retry after {retry_after} s")
        self.retry_after = retry_after


def open_storage(url: str, *, key_prefix: str = KEY_PREFIX) -> Storage:
    """The counters' storage for a `memory://` or `redis://` URL (Redis is reached lazily)."""
    try:
        if url.startswith("memory://"):
            storage = storage_from_string(url)
        else:
            storage = storage_from_string(
                url,
                key_prefix=key_prefix,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
    except ConfigurationError as exc:
        raise ConfigError(f"rate-limit storage: {exc}") from None
    if not isinstance(storage, Storage):
        raise ConfigError("rate-limit storage: use a memory:// or redis:// URL")
    return storage


class RateLimiter:
    """At most `rate` hits per key in any window of the rate's length (e.g. `600/minute`).

    Memory counters are updated in the event loop (microseconds); Redis calls run in a thread.
    When Redis cannot be reached the request passes and a warning is logged (at most once a
    minute): an unavailable limiter must not take the API down.
    """

    def __init__(
        self, rate: str, storage: Storage, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.rate = rate
        self._item = limits.parse(rate)
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._in_thread = not isinstance(storage, MemoryStorage)
        self._clock = clock
        self._warned_at = -math.inf

    async def hit(self, *key: str) -> None:
        """Count one request of `key`; RateLimited when its budget is spent."""
        if self._in_thread:
            retry_after = await asyncio.to_thread(self._hit, key)
        else:
            retry_after = self._hit(key)
        if retry_after is not None:
            raise RateLimited(retry_after, self.rate)

    def _hit(self, key: tuple[str, ...]) -> int | None:
        """None when the hit is allowed, else the seconds until one is."""
        try:
            if self._limiter.hit(self._item, *key):
                return None
            reset_at, _remaining = self._limiter.get_window_stats(self._item, *key)
        except StorageError as exc:
            now = self._clock()
            if now - self._warned_at >= _WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning(
                    "rate-limit storage unavailable, requests pass unlimited: %s",
                    type(exc.storage_error).__name__,
                )
            return None
        return max(1, math.ceil(reset_at - self._clock()))
