"""GraphQL types, queries and mutations for device administration (scope `devices:admin`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from cityos.platform.api.graphql.common import GeoPointType, InputError, NotFoundError, PageInfo
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.enums import DomainEnum
from cityos.platform.api.graphql.unset import given
from cityos.platform.audit.types import admin_call
from cityos.platform.devices import admin
from cityos.platform.devices.service import (
    DeviceChanges,
    DeviceRevoked,
    NewDeviceCredentials,
    SensorSpec,
    sensor_spec,
)
from cityos.platform.domain.errors import AlreadyExists, CityosError, InvalidInput, NotFound
from cityos.platform.domain.model import Device, GeoPoint, Rejection, Sensor
from cityos.platform.ingest.topics import uplink_topic
from cityos.platform.security import DEVICES_ADMIN

T = TypeVar("T")


@strawberry.type(name="DeviceSensor", description="A sensor as its device declares it")
class DeviceSensorType:
    """A device's sensor with its declared unit, valid range and retirement."""

    id: strawberry.ID
    quantity: str
    unit: str
    valid_min: float | None
    valid_max: float | None
    retired: bool

    @classmethod
    def of(cls, sensor: Sensor) -> DeviceSensorType:
        """The GraphQL form of a domain sensor."""
        return cls(
            id=strawberry.ID(sensor.id),
            quantity=sensor.quantity,
            unit=sensor.unit,
            valid_min=sensor.valid_min,
            valid_max=sensor.valid_max,
            retired=sensor.retired,
        )


@strawberry.type(name="Device", description="A registered publisher with its own MQTT identity")
class DeviceType:
    """GraphQL Device (admin view)."""

    id: strawberry.ID
    name: str
    domain: DomainEnum
    format: str = strawberry.field(description="payload format: json, senml or ttn")
    location: GeoPointType | None
    revoked: bool
    created_at: datetime | None
    uplink_topic: str = strawberry.field(description="the only topic it may publish to")

    @strawberry.field(description="Its sensors, retired ones included, ordered by quantity")
    async def sensors(self, info: Info[GraphQLContext, None]) -> list[DeviceSensorType]:
        """The device's sensors."""
        sensors = await asyncio.to_thread(
            info.context.runtime.catalog.sensors_of_device, str(self.id)
        )
        return [DeviceSensorType.of(sensor) for sensor in sorted(sensors, key=_quantity)]

    @classmethod
    def of(cls, device: Device) -> DeviceType:
        """The GraphQL form of a domain device."""
        return cls(
            id=strawberry.ID(device.id),
            name=device.name,
            domain=DomainEnum.of(device.domain),
            format=device.payload_format,
            location=GeoPointType.of(device.location),
            revoked=device.revoked,
            created_at=device.created_at,
            uplink_topic=uplink_topic(device.id),
        )


def _quantity(sensor: Sensor) -> str:
    return sensor.quantity


@strawberry.type(name="DeviceConnection")
class DeviceConnection:
    """A page of devices."""

    nodes: list[DeviceType]
    page_info: PageInfo
    total_count: int


@strawberry.type(
    name="DeviceCredentials",
    description="MQTT credentials, shown once; run `cityos mosquitto sync` so the broker knows",
)
class DeviceCredentialsType:
    """A device's MQTT username and freshly generated password."""

    device_id: strawberry.ID
    mqtt_username: str
    mqtt_password: str
    uplink_topic: str

    @classmethod
    def of(cls, credentials: NewDeviceCredentials) -> DeviceCredentialsType:
        """The GraphQL form of new credentials."""
        return cls(
            device_id=strawberry.ID(credentials.device_id),
            mqtt_username=credentials.mqtt_username,
            mqtt_password=credentials.mqtt_password,
            uplink_topic=uplink_topic(credentials.device_id),
        )


@strawberry.type(name="RejectedMessage", description="A message or reading ingestion refused")
class RejectedMessageType:
    """One dead-letter record."""

    time: datetime
    topic: str
    device_id: str | None
    quantity: str | None
    reason: str
    excerpt: str

    @classmethod
    def of(cls, rejection: Rejection) -> RejectedMessageType:
        """The GraphQL form of a dead-letter record."""
        return cls(
            time=rejection.received_at,
            topic=rejection.topic,
            device_id=rejection.device_id,
            quantity=rejection.quantity,
            reason=rejection.reason,
            excerpt=rejection.excerpt,
        )


@strawberry.input(name="GeoPointInput", description="A WGS 84 position")
class GeoPointInput:
    """A position given by the caller."""

    lat: float
    lon: float

    def to_point(self) -> GeoPoint:
        """The domain point."""
        return GeoPoint(lat=self.lat, lon=self.lon)


@strawberry.input(name="SensorInput", description="A sensor declaration (SenML unit, valid range)")
class SensorInput:
    """A sensor to add, or the new valid range of an existing one."""

    quantity: str
    unit: str
    valid_min: float | None = strawberry.UNSET
    valid_max: float | None = strawberry.UNSET

    def to_spec(self) -> SensorSpec:
        """The validated declaration."""
        return sensor_spec(self.quantity, self.unit, given(self.valid_min), given(self.valid_max))


@strawberry.input(name="AddDeviceInput")
class AddDeviceInput:
    """A device to register."""

    id: str
    name: str
    domain: DomainEnum
    format: str
    sensors: list[SensorInput]
    location: GeoPointInput | None = strawberry.UNSET


@strawberry.input(name="UpdateDeviceInput", description="Only what is given changes")
class UpdateDeviceInput:
    """Changes to a device: name, location, sensors added or changed, sensors retired."""

    name: str | None = strawberry.UNSET
    location: GeoPointInput | None = strawberry.UNSET
    sensors: list[SensorInput] = strawberry.field(default_factory=list)
    retire: list[str] = strawberry.field(default_factory=list)


AddDeviceResult = Annotated[DeviceCredentialsType | InputError, strawberry.union("AddDeviceResult")]
UpdateDeviceResult = Annotated[
    DeviceType | InputError | NotFoundError, strawberry.union("UpdateDeviceResult")
]
RotateDeviceCredentialsResult = Annotated[
    DeviceCredentialsType | InputError | NotFoundError,
    strawberry.union("RotateDeviceCredentialsResult"),
]
RevokeDeviceResult = Annotated[DeviceType | NotFoundError, strawberry.union("RevokeDeviceResult")]


async def _admin_call(
    info: Info[GraphQLContext, None],
    call: Callable[[], T],
    *,
    resources: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> T:
    """Run a catalog call in a thread after checking the `devices:admin` scope; audit it."""
    return await admin_call(info, DEVICES_ADMIN, call, resources=resources, details=details)


async def resolve_devices(
    info: Info[GraphQLContext, None],
    domain: DomainEnum | None = strawberry.UNSET,
    first: int | None = 100,
    after: str | None = strawberry.UNSET,
) -> DeviceConnection:
    """Registered devices, ordered by id, paged (scope devices:admin)."""
    domain, after = given(domain), given(after)
    page = await _admin_call(
        info,
        lambda: admin.list_devices(
            catalog=info.context.runtime.catalog,
            domain=None if domain is None else domain.to_domain(),
            first=100 if first is None else first,
            after=after,
        ),
    )
    return DeviceConnection(
        nodes=[DeviceType.of(device) for device in page.items],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        total_count=page.total_count,
    )


async def resolve_device(info: Info[GraphQLContext, None], id: strawberry.ID) -> DeviceType | None:
    """One device by id, or null (scope devices:admin)."""
    device = await _admin_call(
        info,
        lambda: admin.find_device(catalog=info.context.runtime.catalog, device_id=str(id)),
        resources=[str(id)],
    )
    return None if device is None else DeviceType.of(device)


async def resolve_rejected_messages(
    info: Info[GraphQLContext, None],
    device_id: str | None = strawberry.UNSET,
    since: datetime | None = strawberry.UNSET,
    first: int | None = 100,
) -> list[RejectedMessageType]:
    """Dead-letter records of ingestion, newest first (scope devices:admin)."""
    device_id, since = given(device_id), given(since)
    records = await _admin_call(
        info,
        lambda: admin.list_rejections(
            catalog=info.context.runtime.catalog,
            device_id=device_id,
            since=since,
            first=100 if first is None else first,
        ),
    )
    return [RejectedMessageType.of(record) for record in records]


def _point(location: GeoPointInput | None) -> GeoPoint | None:
    location = given(location)
    return None if location is None else location.to_point()


def _input_error(exc: CityosError) -> InputError:
    field = exc.field if isinstance(exc, InvalidInput) else None
    return InputError(message=str(exc), field=field)


@strawberry.type
class DeviceMutations:
    """Device administration (scope devices:admin); expected failures are result types."""

    @strawberry.mutation(description="Register a device; its MQTT password is shown once")
    async def add_device(
        self, info: Info[GraphQLContext, None], input: AddDeviceInput
    ) -> AddDeviceResult:
        """Register a device and its sensors."""
        runtime = info.context.runtime
        try:
            credentials = await _admin_call(
                info,
                lambda: admin.add_device(
                    catalog=runtime.catalog,
                    device_id=input.id,
                    name=input.name,
                    domain=input.domain.to_domain(),
                    payload_format=input.format,
                    sensors=[sensor.to_spec() for sensor in input.sensors],
                    location=_point(input.location),
                    known_formats=runtime.decoders.keys(),
                ),
                resources=[input.id],
                details={"domain": input.domain.value},
            )
        except AlreadyExists as exc:
            return InputError(message=str(exc), field="id")
        except InvalidInput as exc:
            return _input_error(exc)
        return DeviceCredentialsType.of(credentials)

    @strawberry.mutation(description="Change a device's name, location or sensors")
    async def update_device(
        self, info: Info[GraphQLContext, None], id: strawberry.ID, input: UpdateDeviceInput
    ) -> UpdateDeviceResult:
        """Update a device."""
        try:
            device = await _admin_call(
                info,
                lambda: admin.update_device(
                    catalog=info.context.runtime.catalog,
                    device_id=str(id),
                    changes=DeviceChanges(
                        name=given(input.name),
                        location=_point(input.location),
                        sensors=[sensor.to_spec() for sensor in input.sensors],
                        retire=list(input.retire),
                    ),
                ),
                resources=[str(id)],
            )
        except NotFound as exc:
            return NotFoundError(message=str(exc), id=id)
        except InvalidInput as exc:
            return _input_error(exc)
        return DeviceType.of(device)

    @strawberry.mutation(description="Give a device a new MQTT password (shown once)")
    async def rotate_device_credentials(
        self, info: Info[GraphQLContext, None], id: strawberry.ID
    ) -> RotateDeviceCredentialsResult:
        """Rotate a device's MQTT password."""
        try:
            credentials = await _admin_call(
                info,
                lambda: admin.rotate_credentials(
                    catalog=info.context.runtime.catalog, device_id=str(id)
                ),
                resources=[str(id)],
            )
        except NotFound as exc:
            return NotFoundError(message=str(exc), id=id)
        except (DeviceRevoked, InvalidInput) as exc:
            return _input_error(exc)
        return DeviceCredentialsType.of(credentials)

    @strawberry.mutation(description="Revoke a device: ingestion refuses it, sync drops it")
    async def revoke_device(
        self, info: Info[GraphQLContext, None], id: strawberry.ID
    ) -> RevokeDeviceResult:
        """Revoke a device (idempotent)."""
        try:
            device = await _admin_call(
                info,
                lambda: admin.revoke_device(
                    catalog=info.context.runtime.catalog, device_id=str(id)
                ),
                resources=[str(id)],
            )
        except NotFound as exc:
            return NotFoundError(message=str(exc), id=id)
        return DeviceType.of(device)
