"""GraphQL types and resolvers for sensors."""

from __future__ import annotations

import asyncio

import strawberry
from strawberry.types import Info

from cityos.platform.api.graphql.common import GeoPointType, PageInfo
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.enums import DomainEnum
from cityos.platform.api.graphql.unset import given
from cityos.platform.domain.model import Sensor
from cityos.platform.observations.types import ObservationType
from cityos.platform.sensors.service import find_sensor, list_sensors


@strawberry.type(name="Sensor", description="One quantity measured by one device at one place")
class SensorType:
    """GraphQL Sensor."""

    id: strawberry.ID
    name: str
    device_id: str
    quantity: str
    unit: str
    domain: DomainEnum
    location: GeoPointType | None
    source: strawberry.Private[Sensor]

    @strawberry.field(description="The newest observation (one store round trip per page)")
    async def latest(self, info: Info[GraphQLContext, None]) -> ObservationType | None:
        """The newest observation of this sensor."""
        observation = await info.context.latest.load(str(self.id))
        if observation is None:
            return None
        info.context.audit.read(info.field_name, [self.source])
        return ObservationType.of(observation)

    @classmethod
    def of(cls, sensor: Sensor) -> SensorType:
        """The GraphQL form of a domain sensor."""
        return cls(
            id=strawberry.ID(sensor.id),
            name=sensor.name,
            device_id=sensor.device_id,
            quantity=sensor.quantity,
            unit=sensor.unit,
            domain=DomainEnum.of(sensor.domain),
            location=GeoPointType.of(sensor.location),
            source=sensor,
        )


@strawberry.type(name="SensorConnection")
class SensorConnection:
    """A page of sensors."""

    nodes: list[SensorType]
    page_info: PageInfo
    total_count: int


async def resolve_sensors(
    info: Info[GraphQLContext, None],
    domain: DomainEnum | None = strawberry.UNSET,
    device_id: str | None = strawberry.UNSET,
    first: int | None = 100,
    after: str | None = strawberry.UNSET,
) -> SensorConnection:
    """The sensors the caller may read, ordered by id, paged."""
    domain, device_id, after = given(domain), given(device_id), given(after)
    page = await asyncio.to_thread(
        list_sensors,
        catalog=info.context.runtime.catalog,
        principal=info.context.principal,
        domain=None if domain is None else domain.to_domain(),
        device_id=device_id,
        first=100 if first is None else first,
        after=after,
    )
    info.context.audit.read(info.field_name, page.items)
    return SensorConnection(
        nodes=[SensorType.of(sensor) for sensor in page.items],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        total_count=page.total_count,
    )


async def resolve_sensor(info: Info[GraphQLContext, None], id: strawberry.ID) -> SensorType | None:
    """One sensor by id; null when unknown or not readable by the caller."""
    sensor = await asyncio.to_thread(
        find_sensor,
        catalog=info.context.runtime.catalog,
        principal=info.context.principal,
        sensor_id=str(id),
    )
    if sensor is None:
        return None
    info.context.audit.read(info.field_name, [sensor])
    return SensorType.of(sensor)
