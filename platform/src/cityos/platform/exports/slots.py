"""How many exports one process streams at once: a slot per export, taken without waiting."""

from __future__ import annotations

import threading


class Slots:
    """At most `limit` slots out at once; `take` answers at once (None when all are out)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a slot limit must be at least 1, not {limit}")
        self.limit = limit
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        """Slots out right now."""
        return self._in_use

    def take(self) -> Slot | None:
        """A free slot, or None when `limit` are out."""
        with self._lock:
            if self._in_use >= self.limit:
                return None
            self._in_use += 1
        return Slot(self)

    def _give_back(self) -> None:
        with self._lock:
            self._in_use -= 1


class Slot:
    """One slot taken from `Slots`; `release` gives it back once, however often it is called."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the slot back (later calls do nothing)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._slots._give_back()
