"""Reading the audit log (it has no update or delete: events are only ever appended)."""

from __future__ import annotations

from datetime import datetime

from cityos.platform.domain.model import AuditEvent
from cityos.platform.paging import check_first
from cityos.platform.ports import Catalog

MAX_EVENTS_PER_REQUEST = 1000


def list_events(
    *, catalog: Catalog, client_id: str | None, since: datetime | None, first: int
) -> list[AuditEvent]:
    """Audit events, newest first, at most `first` (capped), of one client and/or since a time."""
    check_first(first, cap=MAX_EVENTS_PER_REQUEST)
    return catalog.list_audit(client_id=client_id, since=since, limit=first)
