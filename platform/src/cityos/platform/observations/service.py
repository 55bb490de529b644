"""Observation queries: raw ranges with cursor paging, never silently truncated."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.domain.model import Observation
from cityos.platform.paging import Page, check_first, decode_cursor, encode_cursor
from cityos.platform.ports import Catalog, TimeSeriesStore
from cityos.platform.security import Principal
from cityos.platform.sensors.service import find_sensor

MAX_OBSERVATIONS_PER_PAGE = 10000
_CURSOR_KIND = "obs"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time_key(value: datetime) -> str:
    return str((value - _EPOCH) // timedelta(microseconds=1))


def _key_time(key: str) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=int(key))
    except (ValueError, OverflowError):
        raise InvalidInput("malformed cursor in `after`", field="after") from None


def check_range(start: datetime, end: datetime, *, max_days: int) -> None:
    """Validate a half-open time range [start, end)."""
    if end <= start:
        raise InvalidInput("`to` must be after `from`", field="to")
    if end - start > timedelta(days=max_days):
        raise LimitExceeded(
            f"time range of {(end - start).days} days exceeds the maximum of {max_days} days",
            field="to",
        )


def observations_page(
    *,
    catalog: Catalog,
    store: TimeSeriesStore,
    principal: Principal,
    sensor_id: str,
    start: datetime,
    end: datetime,
    first: int,
    after: str | None,
    max_range_days: int,
) -> Page[Observation]:
    """A page of raw observations of one readable sensor in [start, end), oldest first."""
    check_first(first, cap=MAX_OBSERVATIONS_PER_PAGE)
    check_range(start, end, max_days=max_range_days)
    if find_sensor(catalog=catalog, principal=principal, sensor_id=sensor_id) is None:
        raise InvalidInput(f"no sensor {sensor_id!r}", field="sensorId")
    after_time = _key_time(decode_cursor(_CURSOR_KIND, after)) if after is not None else None
    rows = store.query_range(
        sensor_id=sensor_id, start=start, end=end, limit=first + 1, after=after_time
    )
    items = rows[:first]
    return Page(
        items=items,
        has_next_page=len(rows) > first,
        end_cursor=encode_cursor(_CURSOR_KIND, _time_key(items[-1].time)) if items else None,
        total_count=store.count_range(sensor_id=sensor_id, start=start, end=end),
    )


def latest_of(*, store: TimeSeriesStore, sensor_ids: Sequence[str]) -> list[Observation | None]:
    """The newest observation of each sensor, in the order asked (one store round trip)."""
    found = store.latest(list(dict.fromkeys(sensor_ids)))
    return [found.get(sensor_id) for sensor_id in sensor_ids]
