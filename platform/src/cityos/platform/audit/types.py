"""GraphQL face of the audit log: the `audit` query, and admin calls that leave a record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.unset import given
from cityos.platform.audit.service import list_events
from cityos.platform.domain.errors import CityosError, PermissionDenied
from cityos.platform.domain.model import CLIENTS_ADMIN, AuditEvent

T = TypeVar("T")

AUDIT_SCOPE = CLIENTS_ADMIN
"""Reading the audit log needs the scope of those who decide who may read what."""
_MAX_OUTCOME = 200


@strawberry.type(name="AuditEvent", description="One audited operation (append-only log)")
class AuditEventType:
    """GraphQL AuditEvent."""

    time: datetime
    client_id: str | None = strawberry.field(description="the caller; null when anonymous")
    operation: str = strawberry.field(description="the GraphQL field, e.g. observations, addClient")
    resources: list[str] = strawberry.field(description="sensor, device or client ids touched")
    details: JSON = strawberry.field(
        description='{"kind": "health-read" | "admin", "outcome" (admin), "graphql_operation"}'
    )
    source_ip: str | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventType:
        """The GraphQL form of a domain audit event."""
        return cls(
            time=event.time,
            client_id=event.client_id,
            operation=event.operation,
            resources=list(event.resources),
            details=JSON(event.details),
            source_ip=event.source_ip,
        )


async def admin_call(
    info: Info[GraphQLContext, None],
    scope: str,
    call: Callable[[], T],
    *,
    resources: Sequence[str] = (),
    created: Callable[[T], str] | None = None,
    details: dict[str, Any] | None = None,
) -> T:
    """Run `call` in a thread if the caller holds `scope`; audit it however it ends.

    `created` names the resource a successful call made (e.g. a new client's id).
    """
    context, operation = info.context, info.field_name
    try:
        context.principal.require(scope)
    except PermissionDenied:
        context.audit.admin(operation, resources=resources, outcome="forbidden", details=details)
        raise
    try:
        result = await asyncio.to_thread(call)
    except CityosError as exc:
        outcome = f"refused: {exc}"[:_MAX_OUTCOME]
        context.audit.admin(operation, resources=resources, outcome=outcome, details=details)
        raise
    except Exception:
        context.audit.admin(operation, resources=resources, outcome="error", details=details)
        raise
    if created is not None:
        resources = [*resources, created(result)]
    context.audit.admin(operation, resources=resources, details=details)
    return result


async def resolve_audit(
    info: Info[GraphQLContext, None],
    client_id: str | None = strawberry.UNSET,
    since: datetime | None = strawberry.UNSET,
    first: int | None = 100,
) -> list[AuditEventType]:
    """Audit events, newest first (scope clients:admin)."""
    client, start = given(client_id), given(since)
    events = await admin_call(
        info,
        AUDIT_SCOPE,
        lambda: list_events(
            catalog=info.context.runtime.catalog,
            client_id=client,
            since=start,
            first=100 if first is None else first,
        ),
        details={"client_id": client} if client is not None else None,
    )
    return [AuditEventType.of(event) for event in events]
