"""Device administration as the API offers it: validated, paged, one call per operation."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from cityos.platform.devices import service
from cityos.platform.devices.service import DeviceChanges, NewDeviceCredentials, SensorSpec
from cityos.platform.domain.errors import NotFound
from cityos.platform.domain.ids import check_device_id
from cityos.platform.domain.model import Device, Domain, GeoPoint, Rejection
from cityos.platform.paging import Page, check_first, decode_cursor, encode_cursor
from cityos.platform.ports import Catalog

MAX_DEVICES_PER_PAGE = 1000
MAX_REJECTIONS_PER_REQUEST = 1000
_CURSOR_KIND = "device"


def list_devices(
    *, catalog: Catalog, domain: Domain | None, first: int, after: str | None
) -> Page[Device]:
    """A page of registered devices (revoked ones included), ordered by id."""
    check_first(first, cap=MAX_DEVICES_PER_PAGE)
    after_id = None if after is None else check_device_id(decode_cursor(_CURSOR_KIND, after))
    devices = sorted(
        (d for d in catalog.list_devices() if domain is None or d.domain is domain),
        key=lambda device: device.id,
    )
    rest = [d for d in devices if after_id is None or d.id > after_id]
    items = rest[:first]
    return Page(
        items=items,
        has_next_page=len(rest) > first,
        end_cursor=encode_cursor(_CURSOR_KIND, items[-1].id) if items else None,
        total_count=len(devices),
    )


def find_device(*, catalog: Catalog, device_id: str) -> Device | None:
    """One device by id (a malformed id is bad input), or None."""
    return catalog.get_device(check_device_id(device_id))


def list_rejections(
    *, catalog: Catalog, device_id: str | None, since: datetime | None, first: int
) -> list[Rejection]:
    """Dead-letter records, newest first, at most `first` (capped)."""
    check_first(first, cap=MAX_REJECTIONS_PER_REQUEST)
    if device_id is not None:
        check_device_id(device_id)
    return catalog.list_rejections(device_id=device_id, since=since, limit=first)


def add_device(
    *,
    catalog: Catalog,
    device_id: str,
    name: str,
    domain: Domain,
    payload_format: str,
    sensors: Sequence[SensorSpec],
    location: GeoPoint | None,
    known_formats: Collection[str],
) -> NewDeviceCredentials:
    """Validate and register a device; its credentials are returned once."""
    device, new_sensors = service.build_device(
        device_id=device_id,
        name=name,
        domain=domain,
        payload_format=payload_format,
        sensors=sensors,
        location=location,
        known_formats=known_formats,
    )
    return service.register_device(catalog=catalog, device=device, sensors=new_sensors)


def update_device(*, catalog: Catalog, device_id: str, changes: DeviceChanges) -> Device:
    """Apply changes to a device and return it."""
    device, _sensors = service.update_device(
        catalog=catalog, device_id=check_device_id(device_id), changes=changes
    )
    return device


def rotate_credentials(*, catalog: Catalog, device_id: str) -> NewDeviceCredentials:
    """New MQTT credentials for a device."""
    return service.rotate_credentials(catalog=catalog, device_id=check_device_id(device_id))


def revoke_device(*, catalog: Catalog, device_id: str) -> Device:
    """Revoke a device and return it as now stored."""
    service.revoke_device(catalog=catalog, device_id=check_device_id(device_id))
    device = catalog.get_device(device_id)
    if device is None:  # deleted between the two calls
        raise NotFound(f"no device {device_id!r}")
    return device
