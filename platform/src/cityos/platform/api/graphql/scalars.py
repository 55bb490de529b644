"""Custom scalars of CONTRACT.md: DateTime (RFC 3339 with offset)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types.scalar import ScalarDefinition

from cityos.platform.timefmt import format_rfc3339, parse_rfc3339


def _parse_datetime(value: Any) -> datetime:
    return parse_rfc3339(value, field="DateTime")


def _serialize_datetime(value: datetime) -> str:
    return format_rfc3339(value)


SCALAR_MAP: dict[object, ScalarDefinition] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="RFC 3339 date-time with offset; output in Asia/Tokyo (+09:00)",
        specified_by_url="https://www.rfc-editor.org/rfc/rfc3339",
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    ),
}
