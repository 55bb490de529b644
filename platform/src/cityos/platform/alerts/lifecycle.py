"""The lifecycle of alerts: apply messages' statements, in report order, to stored alerts.

One alert is one kind of warning for one area from its issue to its end. Statements about
an alert (`AlertRecord`s with its key) continue or cancel it; an open alert of a group that
a newer message lists without it has been replaced; a statement about a key whose previous
alert has ended starts a new alert. Statements not newer than what an alert already has
(the same message read twice, the VPWW53 twin of a VPWW54) change nothing, so importing
the same messages again, or in another order, gives the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import groupby

from cityos.platform.domain.model import Alert, AlertStatus, AlertTransition
from cityos.platform.ports import AlertGroupRecord, AlertRecord

_STATEMENTS = {status.value for status in (AlertStatus.ISSUED, AlertStatus.CONTINUED)}


def alert_id(key: str, issued_at: datetime) -> str:
    """The id of the alert with `key` issued at `issued_at` (stable across imports)."""
    return f"{key}@{issued_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _message_order(item: AlertRecord | AlertGroupRecord) -> tuple[datetime, int, str]:
    return (item.reported_at, item.rank, item.message_id)


def _statement_order(item: AlertRecord | AlertGroupRecord) -> tuple[object, ...]:
    """Messages in report order; inside one, a fixed order whatever order they came in."""
    if isinstance(item, AlertRecord):
        return (*_message_order(item), 0, item.key, item.status, item.kind, item.area_name)
    return (*_message_order(item), 1, item.group, item.status, item.prefix, "")


@dataclass(slots=True)
class _State:
    """Alerts by id, the newest alert of each key, and the open alerts of each group."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    newest: dict[str, str] = field(default_factory=dict)
    of_key: dict[str, set[str]] = field(default_factory=dict)
    of_group: dict[str, set[str]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    def add(self, alert: Alert) -> None:
        self.alerts[alert.id] = alert
        self.of_key.setdefault(alert.key, set()).add(alert.id)
        self.of_group.setdefault(alert.group, set()).add(alert.id)
        current = self.alerts.get(self.newest.get(alert.key, ""))
        if current is None or (current.issued_at, current.id) <= (alert.issued_at, alert.id):
            self.newest[alert.key] = alert.id

    def covering(self, key: str, at: datetime) -> Alert | None:
        """The alert of `key` that was in its span (issue to end) at `at`, if any."""
        for alert_id_ in sorted(self.of_key.get(key, ())):
            alert = self.alerts[alert_id_]
            if alert.issued_at <= at and (alert.ended_at is None or at <= alert.ended_at):
                return alert
        return None

    def newest_of(self, key: str) -> Alert | None:
        alert_id_ = self.newest.get(key)
        return None if alert_id_ is None else self.alerts[alert_id_]

    def open_in(self, group: AlertGroupRecord | str) -> list[Alert]:
        """The open alerts of a group (and of the groups under it, for a prefix record)."""
        if isinstance(group, str):
            groups = [group]
        else:
            prefix = group.group + ":"
            groups = [
                name
                for name in self.of_group
                if name == group.group or (group.prefix and name.startswith(prefix))
            ]
        found = (self.alerts[i] for name in groups for i in sorted(self.of_group.get(name, ())))
        return [alert for alert in found if _is_open(alert)]


def _is_open(alert: Alert) -> bool:
    return AlertStatus(alert.status).is_open


def _end(alert: Alert, status: AlertStatus, at: datetime, message_id: str) -> Alert:
    return replace(
        alert,
        status=status.value,
        ended_at=at,
        reported_at=at,
        message_id=message_id,
        timeline=(*alert.timeline, AlertTransition(at=at, status=status)),
    )


def _new_alert(record: AlertRecord, dataset_id: str) -> Alert:
    cancelled = record.status == AlertStatus.CANCELLED.value
    status = AlertStatus(record.status)
    issued_at = record.reported_at if cancelled else (record.issued_at or record.reported_at)
    issued_at = min(issued_at, record.reported_at)
    timeline = (AlertTransition(at=issued_at, status=status),)
    return Alert(
        id=alert_id(record.key, issued_at),
        source=record.source,
        kind=record.kind,
        area=record.area,
        area_name=record.area_name,
        status=status.value,
        drill=record.drill,
        issued_at=issued_at,
        kind_code=record.kind_code,
        valid_until=record.valid_until,
        headline=record.headline,
        key=record.key,
        group=record.group,
        dataset_id=dataset_id,
        reported_at=record.reported_at,
        ended_at=record.reported_at if cancelled else None,
        message_id=record.message_id,
        timeline=timeline,
        attributes=dict(record.attributes),
    )


def _continue(alert: Alert, record: AlertRecord, dataset_id: str) -> Alert:
    timeline = alert.timeline
    if alert.status != AlertStatus.CONTINUED.value:
        timeline = (*timeline, AlertTransition(at=record.reported_at, status=AlertStatus.CONTINUED))
    return replace(
        alert,
        kind=record.kind,
        kind_code=record.kind_code,
        area_name=record.area_name,
        status=AlertStatus.CONTINUED.value,
        valid_until=record.valid_until,
        headline=record.headline,
        dataset_id=dataset_id,
        reported_at=record.reported_at,
        message_id=record.message_id,
        timeline=timeline,
        attributes=dict(record.attributes),
    )


def _apply_record(state: _State, record: AlertRecord, dataset_id: str) -> None:
    previous = state.newest_of(record.key)
    if previous is not None:
        if previous.reported_at is not None and record.reported_at <= previous.reported_at:
            # not newer than what the alert already says: the alert it spoke of is unchanged
            state.touched.add((state.covering(record.key, record.reported_at) or previous).id)
            return
        state.touched.add(previous.id)
        if _is_open(previous):
            if record.status in _STATEMENTS:
                state.add(_continue(previous, record, dataset_id))
            else:
                ended = _end(previous, AlertStatus.CANCELLED, record.reported_at, record.message_id)
                state.add(replace(ended, dataset_id=dataset_id))
            return
        if record.status not in _STATEMENTS:
            return  # cancelling what has already ended
    alert = _new_alert(record, dataset_id)
    state.add(alert)
    state.touched.add(alert.id)


def _close_unlisted(
    state: _State, group: str, listed: set[str], at: datetime, message_id: str, dataset_id: str
) -> None:
    for alert in state.open_in(group):
        if alert.key in listed or (alert.reported_at is not None and alert.reported_at >= at):
            continue
        state.add(replace(_end(alert, AlertStatus.REPLACED, at, message_id), dataset_id=dataset_id))
        state.touched.add(alert.id)


def _apply_group(state: _State, record: AlertGroupRecord, dataset_id: str) -> None:
    status = AlertStatus.CANCELLED if record.status == "cancelled" else AlertStatus.REPLACED
    for alert in state.open_in(record):
        if alert.reported_at is not None and alert.reported_at >= record.reported_at:
            continue
        ended = _end(alert, status, record.reported_at, record.message_id)
        state.add(replace(ended, dataset_id=dataset_id))
        state.touched.add(alert.id)


def apply_statements(
    stored: Iterable[Alert],
    statements: Sequence[AlertRecord | AlertGroupRecord],
    *,
    dataset_id: str,
) -> list[Alert]:
    """The alerts `statements` touch, in their new state, given the `stored` ones.

    `stored` must hold every stored alert with a key the statements name, and the open ones
    of every group they list (`Catalog.alerts_of_lineage`). Alerts come back ordered by id,
    changed or not; the catalog's upsert tells which changed.
    """
    state = _State()
    for alert in stored:
        state.add(alert)
    ordered = sorted(statements, key=_statement_order)
    for (at, _rank, message_id), group in groupby(ordered, key=_message_order):
        message = list(group)
        listed: dict[str, set[str]] = {}
        for item in message:
            if isinstance(item, AlertRecord):
                _apply_record(state, item, dataset_id)
                listed.setdefault(item.group, set()).add(item.key)
        for item in message:
            if isinstance(item, AlertGroupRecord):
                _apply_group(state, item, dataset_id)
        for group_key, keys in listed.items():
            _close_unlisted(state, group_key, keys, at, message_id, dataset_id)
    return sorted((state.alerts[i] for i in state.touched), key=lambda alert: alert.id)
