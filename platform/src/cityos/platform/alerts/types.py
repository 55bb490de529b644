"""GraphQL type and resolver of `alerts(active, area, asOf)` (CONTRACT.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import strawberry
from strawberry.types import Info

from cityos.platform.alerts.service import AlertQuery, find_alerts
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.unset import given
from cityos.platform.domain.model import Alert

ALERTS_DESCRIPTION = (
    "Official warnings (JMA weather warnings per municipality, tsunami warnings per forecast "
    "area, heat-stroke alerts), newest issue first. `area` is the JMA area code (2222300 "
    "Omaezaki, 380 the Shizuoka tsunami area). `active`: issued at or before `asOf` (default "
    "now), not cancelled or replaced by then, within the message's validity or else a maximum "
    "age; drills are never active. Each alert shows the status it had at `asOf`. Public."
)


@strawberry.type(name="Alert", description="An official warning (JMA) for one area")
class AlertType:
    """GraphQL Alert."""

    id: strawberry.ID
    source: str = strawberry.field(description="Who issued it, e.g. jma")
    kind: str = strawberry.field(description="What it warns of, as the issuer names it")
    kind_code: str | None = strawberry.field(description="The issuer's code of the kind")
    area: str = strawberry.field(description="JMA area code")
    area_name: str
    status: str = strawberry.field(description="issued, continued, cancelled or replaced")
    drill: bool = strawberry.field(description="A drill (訓練): never active")
    issued_at: datetime
    valid_until: datetime | None = strawberry.field(
        description="End of validity stated by the message, if any"
    )
    headline: str | None

    @classmethod
    def of(cls, alert: Alert) -> AlertType:
        """The GraphQL form of a domain alert."""
        return cls(
            id=strawberry.ID(alert.id),
            source=alert.source,
            kind=alert.kind,
            kind_code=alert.kind_code,
            area=alert.area,
            area_name=alert.area_name,
            status=alert.status,
            drill=alert.drill,
            issued_at=alert.issued_at,
            valid_until=alert.valid_until,
            headline=alert.headline,
        )


async def resolve_alerts(
    info: Info[GraphQLContext, None],
    active: bool | None = strawberry.UNSET,
    area: str | None = strawberry.UNSET,
    as_of: datetime | None = strawberry.UNSET,
) -> list[AlertType]:
    """Alerts by area and activity as of a time; official alerts are public."""
    query = AlertQuery(active=given(active), area=given(area), as_of=given(as_of))
    runtime = info.context.runtime
    alerts = await asyncio.to_thread(
        find_alerts,
        catalog=runtime.catalog,
        query=query,
        max_age=timedelta(hours=runtime.settings.alerts.max_age_hours),
    )
    return [AlertType.of(alert) for alert in alerts]
