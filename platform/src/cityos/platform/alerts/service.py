"""Alerts as of a time: which were in force, with the status they had then."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.domain.model import Alert, AlertStatus
from cityos.platform.ports import Catalog

DEFAULT_MAX_AGE = timedelta(hours=24)
"""How long an alert without a validity of its own stays active after its newest message.

JMA warnings and tsunami messages carry no end time: they hold until cancelled, and JMA
restates them with every update. An alert that no message has restated for this long is
taken to have lapsed (a missed cancellation must not keep it active for ever).
"""
MAX_ALERTS = 5000
"""The most alerts one query returns; above it the caller must narrow by area or active."""
_MAX_AREA_LENGTH = 32


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """`alerts(active, area, asOf)` as CONTRACT.md defines it."""

    active: bool | None = None
    area: str | None = None
    as_of: datetime | None = None


def status_at(alert: Alert, as_of: datetime) -> AlertStatus:
    """The status the alert had at `as_of` (its current one when it has no timeline)."""
    entered = [step for step in alert.timeline if step.at <= as_of]
    return entered[-1].status if entered else AlertStatus(alert.status)


def _last_word(alert: Alert, as_of: datetime) -> datetime:
    """The newest message at or before `as_of` known to have stated the alert."""
    if alert.reported_at is not None and alert.reported_at <= as_of:
        return alert.reported_at
    said = [step.at for step in alert.timeline if step.at <= as_of]
    return max([alert.issued_at, *said])


def is_active(alert: Alert, as_of: datetime, *, max_age: timedelta = DEFAULT_MAX_AGE) -> bool:
    """Issued at or before `as_of`, not ended by then, within its validity; never a drill."""
    if alert.drill or alert.issued_at > as_of:
        return False
    if alert.ended_at is not None and alert.ended_at <= as_of:
        return False
    if not status_at(alert, as_of).is_open:
        return False
    if alert.valid_until is not None:
        return as_of < alert.valid_until
    return as_of < _last_word(alert, as_of) + max_age


def as_of_view(alert: Alert, as_of: datetime) -> Alert:
    """The alert as it stood at `as_of` (its status then)."""
    status = status_at(alert, as_of)
    return alert if status.value == alert.status else replace(alert, status=status.value)


def _check(query: AlertQuery) -> None:
    if query.as_of is not None and query.as_of.tzinfo is None:
        raise InvalidInput("asOf must carry a time zone offset", field="asOf")
    if query.area is not None and not (0 < len(query.area) <= _MAX_AREA_LENGTH):
        raise InvalidInput("area must be a JMA area code such as 2222300 or 380", field="area")


def find_alerts(
    *,
    catalog: Catalog,
    query: AlertQuery,
    now: datetime | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> list[Alert]:
    """Alerts issued at or before `asOf` (default now), filtered by area and activity.

    Every alert is official (JMA) and public. Newest issue first; each is shown with the
    status it had at `asOf`. LimitExceeded beyond MAX_ALERTS (narrow by area or active).
    """
    _check(query)
    as_of = (query.as_of or now or datetime.now(UTC)).astimezone(UTC)
    rows = catalog.list_alerts(
        area=query.area,
        issued_by=as_of,
        open_at=as_of if query.active else None,
        limit=MAX_ALERTS + 1,
    )
    if len(rows) > MAX_ALERTS:
        raise LimitExceeded(
            f"more than {MAX_ALERTS} alerts match; narrow the query with area or active"
        )
    if query.active is not None:
        rows = [alert for alert in rows if is_active(alert, as_of, max_age=max_age) is query.active]
    return [as_of_view(alert, as_of) for alert in rows]
