"""Durations of CONTRACT.md: "30s" "10m" "1h" "1d" "1w" (fixed) and "1mo" "1y" "1fy" (calendar)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from cityos.platform.domain.errors import InvalidInput

_PATTERN = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d|w|mo|y|fy)$")
_FIXED = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_YEARS = 100
"""No duration is longer than this (windows beyond it only reach past the calendar's end)."""
_MAX_SECONDS = MAX_YEARS * 36525 * 864  # 100 Julian years
_MAX_MONTHS = {"mo": 1, "y": 12, "fy": 12}


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed duration: `count` of `unit`."""

    count: int
    unit: str

    @property
    def is_calendar(self) -> bool:
        """Whether the length depends on the calendar (months, years, fiscal years)."""
        return self.unit not in _FIXED

    def as_timedelta(self) -> timedelta:
        """The fixed length; InvalidInput for calendar units."""
        if self.is_calendar:
            raise InvalidInput(f"{self} has no fixed length; use s, m, h, d or w")
        return timedelta(seconds=self.count * _FIXED[self.unit])

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_duration(text: str) -> Duration:
    """Parse a duration such as "10m" or "1fy"; InvalidInput with the accepted forms if not."""
    match = _PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"malformed duration {str(text)[:40]!r}: expected a positive count and a unit "
            "(s m h d w mo y fy), e.g. 30s, 10m, 1h, 1d, 1w, 1mo, 1y, 1fy",
            field="every",
        )
    duration = Duration(count=int(match.group(1)), unit=match.group(2))
    if duration.is_calendar:
        too_long = duration.count * _MAX_MONTHS[duration.unit] > MAX_YEARS * 12
    else:
        too_long = duration.count * _FIXED[duration.unit] > _MAX_SECONDS
    if too_long:
        raise InvalidInput(f"duration {duration} is longer than {MAX_YEARS} years", field="every")
    return duration
