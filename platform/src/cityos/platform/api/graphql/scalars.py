"""Custom scalars of CONTRACT.md: DateTime (RFC 3339 with offset), Duration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types.scalar import ScalarDefinition

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.durations import Duration, parse_duration
from cityos.platform.timefmt import format_rfc3339, parse_rfc3339


def _parse_datetime(value: Any) -> datetime:
    return parse_rfc3339(value, field="DateTime")


def _serialize_datetime(value: datetime) -> str:
    return format_rfc3339(value)


def _parse_duration(value: Any) -> Duration:
    if not isinstance(value, str):
        raise InvalidInput(f'Duration must be a string such as "1h" (got {value!r:.40})')
    return parse_duration(value)


def _serialize_duration(value: Duration) -> str:
    return str(value)


SCALAR_MAP: dict[object, ScalarDefinition] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="RFC 3339 date-time with offset; output in Asia/Tokyo (+09:00)",
        specified_by_url="https://www.rfc-editor.org/rfc/rfc3339",
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    ),
    Duration: strawberry.scalar(
        name="Duration",
        description=(
            'A count and a unit: "30s" "10m" "1h" "1d" "1w" (fixed; weeks from Monday) or '
            '"1mo" "1y" "1fy" (calendar; fiscal years from April), grouped in Asia/Tokyo'
        ),
        serialize=_serialize_duration,
        parse_value=_parse_duration,
    ),
}
