"""What one API request did that the audit log must keep, written once at its end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from cityos.platform.domain.errors import CityosError
from cityos.platform.domain.model import AuditEvent, Domain
from cityos.platform.ports import Catalog

log = logging.getLogger(__name__)

AUDITED_DOMAINS: frozenset[Domain] = frozenset({Domain.HEALTH})
"""Domains whose every read is audited."""
HEALTH_READ = "health-read"
"""`details.kind` of a read of health-domain data (resources: the sensor ids)."""
ADMIN = "admin"
"""`details.kind` of an operation under an admin scope (resources: the ids it names)."""


class DomainItem(Protocol):
    """Anything read that belongs to a domain: a sensor, a facility."""

    @property
    def id(self) -> str:
        """Its id, recorded as the resource."""

    @property
    def domain(self) -> Domain:
        """Its domain, which decides whether the read is audited."""


class AuditUnavailable(CityosError):
    """The audit log cannot be written, so the health data read in the request is withheld."""


def _now() -> datetime:
    return datetime.now(UTC)


class AuditTrail:
    """Collects one request's audited reads and admin actions for one append at its end."""

    def __init__(
        self,
        *,
        client_id: str | None,
        source_ip: str | None,
        clock: Callable[[], datetime] = _now,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.client_id = client_id
        self.source_ip = source_ip
        self.details: dict[str, Any] = dict(details or {})
        """Merged into every event's details (an event's own keys win), e.g. who acted."""
        self.operation_name: str | None = None
        self._clock = clock
        self._reads: dict[str, dict[str, None]] = {}
        self._events: list[AuditEvent] = []

    def read(self, operation: str, items: Iterable[DomainItem]) -> None:
        """Note that `operation` returned these items' data (only audited domains count)."""
        ids = [item.id for item in items if item.domain in AUDITED_DOMAINS]
        if ids:
            self._reads.setdefault(operation, {}).update(dict.fromkeys(ids))

    def admin(
        self,
        operation: str,
        *,
        resources: Sequence[str] = (),
        outcome: str = "ok",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Note an operation under an admin scope and how it ended (never pass secrets)."""
        self._events.append(
            self._event(
                operation, resources, {"kind": ADMIN, "outcome": outcome, **(details or {})}
            )
        )

    def _event(
        self, operation: str, resources: Iterable[str], details: dict[str, Any]
    ) -> AuditEvent:
        details = {**self.details, **details}
        if self.operation_name is not None:
            details = {**details, "graphql_operation": self.operation_name}
        return AuditEvent(
            time=self._clock(),
            client_id=self.client_id,
            operation=operation,
            resources=tuple(resources),
            details=details,
            source_ip=self.source_ip,
        )

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written."""
        return bool(self._reads or self._events)

    @property
    def has_reads(self) -> bool:
        """Whether the request read data of an audited domain."""
        return bool(self._reads)

    def take(self) -> list[AuditEvent]:
        """The pending events (admin actions in order, then one per read operation); clears."""
        reads = [
            self._event(operation, ids, {"kind": HEALTH_READ})
            for operation, ids in sorted(self._reads.items())
        ]
        events, self._events, self._reads = [*self._events, *reads], [], {}
        return events

    def flush(self, catalog: Catalog) -> None:
        """Append the pending events in one write.

        If that fails: AuditUnavailable when the request read health data (fail closed: the
        caller must not get data whose reading is not on record); otherwise (admin actions,
        which have happened already and whose results, such as a new secret, must reach the
        caller) the events are logged at ERROR and the request's answer stands.
        """
        had_reads = self.has_reads
        events = self.take()
        if not events:
            return
        try:
            catalog.append_audit(events)
        except Exception as exc:
            if had_reads:
                raise AuditUnavailable("the audit log cannot be written") from exc
            for event in events:
                log.error(
                    "audit event NOT recorded: %s by %s from %s on %s (%s)",
                    event.operation,
                    event.client_id or "anonymous",
                    event.source_ip or "-",
                    ",".join(event.resources) or "-",
                    event.details.get("outcome", ""),
                    exc_info=exc,
                )
