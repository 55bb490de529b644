"""Time as the auth code sees it: an injectable clock of epoch seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Returns the current time in seconds since the Unix epoch."""

system_clock: Clock = time.time


def to_datetime(epoch: float) -> datetime:
    """An aware UTC datetime for epoch seconds."""
    return datetime.fromtimestamp(epoch, UTC)
