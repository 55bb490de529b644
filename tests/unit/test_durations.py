"""Duration strings of CONTRACT.md."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_fixed_durations(text: str, length: timedelta) -> None:
    duration = parse_duration(text)
    assert not duration.is_calendar
    assert duration.as_timedelta() == length
    assert str(duration) == text


@pytest.mark.parametrize("text", ["1mo", "1y", "1fy"])
def test_calendar_durations_have_no_fixed_length(text: str) -> None:
    duration = parse_duration(text)
    assert duration.is_calendar
    with pytest.raises(InvalidInput, match="no fixed length"):
        duration.as_timedelta()


@pytest.mark.parametrize(
    "text", ["", "0s", "-1d", "1", "d", "1.5h", "1 d", "1D", "1mon", "9999999s"]
)
def test_malformed_durations(text: str) -> None:
    with pytest.raises(InvalidInput, match="malformed duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["100y", "100fy", "1200mo", "36525d", "5217w", "999999s"])
def test_durations_up_to_a_hundred_years(text: str) -> None:
    assert str(parse_duration(text)) == text


@pytest.mark.parametrize("text", ["101y", "999999y", "101fy", "1201mo", "36526d", "5219w"])
def test_durations_over_a_hundred_years_are_refused(text: str) -> None:
    # beyond this, calendar windows would reach past year 9999 (an INTERNAL error before)
    with pytest.raises(InvalidInput, match="longer than 100 years"):
        parse_duration(text)
