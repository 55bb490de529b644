"""GraphQL types and resolvers for observations."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from cityos.platform.api.graphql.common import PageInfo
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.enums import AggregateEnum, FillEnum, QualityEnum
from cityos.platform.api.graphql.unset import given
from cityos.platform.domain.model import Observation
from cityos.platform.durations import Duration
from cityos.platform.observations.service import SeriesOptions, series_page
from cityos.platform.observations.windows import WindowValue

OBSERVATIONS_DESCRIPTION = (
    "Observations of one sensor in [from, to), oldest first, paged with first/after. "
    "Without `every`: raw observations. With `every`: one node per window, `time` = window start "
    "(the first window may start before `from`; only data in [from, to) counts), `value` = "
    "`aggregate` (default MEAN) of the window's observations of any quality, `quality` GOOD; "
    "windows are aligned in Asia/Tokyo (days at 00:00 JST, weeks on Monday, 1mo on the 1st, "
    "3mo on Jan/Apr/Jul/Oct, 1y on Jan 1, 1fy on Apr 1) and empty ones follow `fill`. "
    "`maxPoints` without `every`: raw observations if there are at most that many, otherwise "
    "`aggregate` (default MEAN) over at most maxPoints windows of whole seconds starting at "
    "`from`. `maxPoints` with `every`: LIMIT_EXCEEDED when there would be more windows. "
    "`aggregate` or `fill` without `every` or `maxPoints` is BAD_USER_INPUT. "
    "All observations fields of one request return at most the server's maximum of points "
    "together (LIMIT_EXCEEDED beyond)."
)


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

    @classmethod
    def of_window(cls, window: WindowValue) -> ObservationType:
        """A window as an observation: its start, its value (null when filled so), GOOD."""
        return cls(time=window.start, value=window.value, quality=QualityEnum.GOOD)


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
    every: Duration | None = strawberry.UNSET,
    aggregate: AggregateEnum | None = strawberry.UNSET,
    fill: FillEnum | None = FillEnum.NONE,
    max_points: int | None = strawberry.UNSET,
    first: int | None = 1000,
    after: str | None = strawberry.UNSET,
) -> ObservationConnection:
    """Observations of one sensor in [from, to): raw, windowed or downsampled, paged."""
    chosen = given(aggregate)
    options = SeriesOptions(
        every=given(every),
        aggregate=None if chosen is None else chosen.value,
        fill=(fill or FillEnum.NONE).value,
        max_points=given(max_points),
    )
    context = info.context
    runtime = context.runtime
    series = await asyncio.to_thread(
        series_page,
        catalog=runtime.catalog,
        store=runtime.store,
        principal=context.principal,
        sensor_id=str(sensor_id),
        start=from_,
        end=to,
        options=options,
        first=1000 if first is None else first,
        after=given(after),
        max_range_days=runtime.settings.api.max_range_days,
        max_points=runtime.settings.api.max_points,
    )
    page = series.page
    context.points.charge(len(page.items))
    context.audit.read(info.field_name, [series.sensor])
    nodes = [
        ObservationType.of_window(item)
        if isinstance(item, WindowValue)
        else ObservationType.of(item)
        for item in page.items
    ]
    return ObservationConnection(
        nodes=nodes,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        total_count=page.total_count,
    )
