"""Sensor queries, filtered by what the caller may read."""

from __future__ import annotations

from cityos.platform.domain.ids import check_device_id, split_sensor_id
from cityos.platform.domain.model import Domain, Sensor
from cityos.platform.paging import Page, check_first, decode_cursor, encode_cursor
from cityos.platform.ports import Catalog
from cityos.platform.security import Principal

MAX_SENSORS_PER_PAGE = 1000
_CURSOR_KIND = "sensor"


def list_sensors(
    *,
    catalog: Catalog,
    principal: Principal,
    domain: Domain | None,
    device_id: str | None,
    first: int,
    after: str | None,
) -> Page[Sensor]:
    """A page of the sensors the caller may read, ordered by id."""
    check_first(first, cap=MAX_SENSORS_PER_PAGE)
    if device_id is not None:
        check_device_id(device_id)
    after_id = None
    if after is not None:
        after_id = decode_cursor(_CURSOR_KIND, after)
        split_sensor_id(after_id)  # a forged cursor must be refused, not sent to the database
    domains = principal.readable_domains
    if domain is not None:
        domains = domains & {domain}
    rows = catalog.list_sensors(
        domains=domains, device_id=device_id, after_id=after_id, limit=first + 1
    )
    items = rows[:first]
    return Page(
        items=items,
        has_next_page=len(rows) > first,
        end_cursor=encode_cursor(_CURSOR_KIND, items[-1].id) if items else None,
        total_count=catalog.count_sensors(domains=domains, device_id=device_id),
    )


def find_sensor(*, catalog: Catalog, principal: Principal, sensor_id: str) -> Sensor | None:
    """The sensor if it exists and the caller may read it (hidden looks like unknown)."""
    split_sensor_id(sensor_id)
    sensor = catalog.get_sensor(sensor_id)
    if sensor is None or not principal.can_read(sensor.domain):
        return None
    return sensor
