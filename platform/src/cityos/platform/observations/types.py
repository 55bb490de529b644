"""GraphQL types and resolvers for observations."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from cityos.platform.api.graphql.common import PageInfo
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.enums import QualityEnum
from cityos.platform.api.graphql.unset import given
from cityos.platform.domain.model import Observation
from cityos.platform.observations.service import observations_page


@strawberry.type(name="Observation", description="One value of a sensor at one time")
class ObservationType:
    """GraphQL Observation."""

    time: datetime
    value: float | None
    quality: QualityEnum

    @classmethod
    def of(cls, observation: Observation) -> ObservationType:
        """The GraphQL form of a domain observation."""
        return cls(
            time=observation.time,
            value=observation.value,
            quality=QualityEnum.of(observation.quality),
        )


@strawberry.type(name="ObservationConnection")
class ObservationConnection:
    """A page of observations."""

    nodes: list[ObservationType]
    page_info: PageInfo
    total_count: int


async def resolve_observations(
    info: Info[GraphQLContext, None],
    sensor_id: strawberry.ID,
    from_: Annotated[datetime, strawberry.argument(name="from")],
    to: datetime,
    first: int | None = 1000,
    after: str | None = strawberry.UNSET,
) -> ObservationConnection:
    """Raw observations of one sensor in [from, to), oldest first, paged."""
    after = given(after)
    runtime = info.context.runtime
    page = await asyncio.to_thread(
        observations_page,
        catalog=runtime.catalog,
        store=runtime.store,
        principal=info.context.principal,
        sensor_id=str(sensor_id),
        start=from_,
        end=to,
        first=1000 if first is None else first,
        after=after,
        max_range_days=runtime.settings.api.max_range_days,
    )
    return ObservationConnection(
        nodes=[ObservationType.of(item) for item in page.items],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        total_count=page.total_count,
    )
