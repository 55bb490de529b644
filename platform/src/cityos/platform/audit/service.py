"""Reading the audit log (it has no update or delete: events are only ever appended)."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cityos.platform.domain.errors import CityosError
from cityos.platform.domain.model import AuditEvent
from cityos.platform.paging import check_first
from cityos.platform.ports import Catalog

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 1000


def list_events(
    *, catalog: Catalog, client_id: str | None, since: datetime | None, first: int
) -> list[AuditEvent]:
    """Audit events, newest first, at most `first` (capped), of one client and/or since a time."""
    check_first(first, cap=MAX_EVENTS_PER_REQUEST)
    return catalog.list_audit(client_id=client_id, since=since, limit=first)


def record_cli_action(
    catalog: Catalog, operation: str, resources: Sequence[str], **details: Any
) -> None:
    """Append an admin action taken on the command line (client None, the OS user in details).

    The action has already happened; if its record cannot be written that is logged at ERROR
    (as for admin actions through the API) rather than undoing it.
    """
    event = AuditEvent(
        time=datetime.now(UTC),
        client_id=None,
        operation=f"cli: {operation}",
        resources=tuple(resources),
        details={"kind": "admin", "outcome": "ok", **cli_actor(), **details},
    )
    try:
        catalog.append_audit([event])
    except CityosError as exc:
        log.error(
            "audit event NOT recorded: %s on %s by the command line: %s",
            event.operation,
            ", ".join(event.resources),
            exc,
        )


def cli_actor() -> dict[str, str | None]:
    """Audit details naming the command line as the actor: `via` and the OS user."""
    return {"via": "cli", "os_user": _os_user()}


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return None
