"""Alert lifecycle across messages, and active/asOf semantics (CONTRACT.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityos.platform.alerts.lifecycle import alert_id, apply_statements
from cityos.platform.alerts.service import (
    DEFAULT_MAX_AGE,
    MAX_ALERTS,
    AlertQuery,
    as_of_view,
    find_alerts,
    is_active,
    status_at,
)
from cityos.platform.domain.errors import LimitExceeded
from cityos.platform.domain.model import Alert, AlertStatus
from cityos.platform.ports import AlertGroupRecord, AlertRecord, Catalog

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=JST)
DS = "jma:test"


def record(
    minutes: int,
    status: str = "issued",
    *,
    area: str = "2222300",
    code: str = "03",
    kind: str = "大雨警報",
    message: str | None = None,
    rank: int = 0,
    valid_until: datetime | None = None,
) -> AlertRecord:
    return AlertRecord(
        key=f"jma:warning:{area}:{code}",
        group=f"jma:warning:{area}",
        source="jma",
        kind=kind,
        kind_code=code,
        area=area,
        area_name="御前崎市",
        status=status,
        drill=False,
        reported_at=T0 + timedelta(minutes=minutes),
        message_id=message or f"m{minutes}-{rank}",
        valid_until=valid_until,
        rank=rank,
    )


def apply(
    *statements: AlertRecord | AlertGroupRecord, stored: list[Alert] | None = None
) -> list[Alert]:
    return apply_statements(stored or [], list(statements), dataset_id=DS)


def test_issued_continued_cancelled_is_one_alert() -> None:
    (alert,) = apply(record(0), record(60, "continued"), record(120, "cancelled"))
    assert (
        alert.id
        == alert_id("jma:warning:2222300:03", T0)
        == ("jma:warning:2222300:03@20260701T000000Z")
    )
    assert (alert.status, alert.issued_at, alert.ended_at) == (
        "cancelled",
        T0,
        T0 + timedelta(minutes=120),
    )
    assert [step.status for step in alert.timeline] == ["issued", "continued", "cancelled"]
    assert alert.message_id == "m120-0"
    assert alert.dataset_id == DS
    assert status_at(alert, T0 + timedelta(minutes=30)) is AlertStatus.ISSUED
    assert status_at(alert, T0 + timedelta(minutes=90)) is AlertStatus.CONTINUED
    assert is_active(alert, T0 + timedelta(minutes=119))
    assert not is_active(alert, T0 + timedelta(minutes=120))
    assert not is_active(alert, T0 - timedelta(seconds=1))


def test_order_of_the_statements_does_not_matter() -> None:
    statements = [record(0), record(60, "continued"), record(120, "cancelled")]
    assert apply(*statements) == apply(*reversed(statements))


def test_applying_the_same_messages_again_changes_nothing() -> None:
    first = apply(record(0), record(60, "continued"))
    again = apply(record(0), record(60, "continued"), stored=first)
    assert again == first


def test_in_steps_gives_the_same_alert_as_at_once() -> None:
    step1 = apply(record(0))
    step2 = apply(record(60, "continued"), stored=step1)
    step3 = apply(record(120, "cancelled"), stored=step2)
    assert step3 == apply(record(0), record(60, "continued"), record(120, "cancelled"))


def test_vpww53_twin_of_a_vpww54_is_the_same_alert() -> None:
    vpww54 = record(0, message="20260701000000_0_VPWW54_220000.xml")
    vpww53 = replace(
        record(0, message="20260701000000_0_VPWW53_220000.xml", rank=1), headline="older"
    )
    (alert,) = apply(vpww53, vpww54)
    assert str(alert.message_id).endswith("VPWW54_220000.xml")
    assert alert.timeline[-1].status is AlertStatus.ISSUED
    assert len(alert.timeline) == 1


def test_a_kind_no_longer_listed_for_its_area_was_replaced() -> None:
    advisory = record(0, code="10", kind="大雨注意報")
    warning = record(30, code="03", kind="大雨警報")  # 注意報 -> 警報: the 注意報 is not listed
    alerts = {a.kind_code: a for a in apply(advisory, warning)}
    assert alerts["10"].status == "replaced"
    assert alerts["10"].ended_at == T0 + timedelta(minutes=30)
    assert alerts["03"].status == "issued"
    other_area = record(30, area="2221100", code="03")
    assert {a.status for a in apply(advisory, other_area) if a.area == "2222300"} == {"issued"}


def test_a_municipality_listed_with_nothing_ends_what_was_open() -> None:
    nothing = AlertGroupRecord(
        group="jma:warning:2222300",
        source="jma",
        status="listed",
        drill=False,
        reported_at=T0 + timedelta(hours=1),
        message_id="m-nothing",
    )
    (alert,) = apply(record(0), nothing)
    assert (alert.status, alert.ended_at) == ("replaced", T0 + timedelta(hours=1))
    (untouched,) = apply(record(120), nothing)  # the group statement is older
    assert untouched.status == "issued"


def test_a_retraction_cancels_every_area_of_the_event() -> None:
    def tsunami(area: str) -> AlertRecord:
        return replace(
            record(0, area=area, code="62", kind="津波注意報"),
            key=f"jma:tsunami:E1:{area}:62",
            group=f"jma:tsunami:E1:{area}",
        )

    other_event = replace(tsunami("390"), key="jma:tsunami:E10:390:62", group="jma:tsunami:E10:390")
    retraction = AlertGroupRecord(
        group="jma:tsunami:E1",
        source="jma",
        status="cancelled",
        drill=False,
        reported_at=T0 + timedelta(minutes=5),
        message_id="m-retract",
        prefix=True,
    )
    alerts = apply(tsunami("380"), tsunami("400"), other_event, retraction)
    assert {(a.group, a.status) for a in alerts} == {
        ("jma:tsunami:E1:380", "cancelled"),
        ("jma:tsunami:E1:400", "cancelled"),
        ("jma:tsunami:E10:390", "issued"),  # E10 is not under E1
    }


def test_after_an_end_the_same_key_starts_a_new_alert() -> None:
    alerts = apply(record(0), record(60, "cancelled"), record(600), record(660, "continued"))
    assert [(a.issued_at, a.status) for a in alerts] == [
        (T0, "cancelled"),
        (T0 + timedelta(minutes=600), "continued"),
    ]
    assert len({a.id for a in alerts}) == 2


def test_a_cancellation_of_an_unknown_alert_is_kept_ended() -> None:
    (alert,) = apply(record(0, "cancelled"))
    assert (alert.status, alert.issued_at, alert.ended_at) == ("cancelled", T0, T0)
    assert not is_active(alert, T0)
    assert apply(record(30, "cancelled"), stored=[alert]) == [alert]  # already ended


def test_first_seen_continued_starts_at_its_message() -> None:
    (alert,) = apply(record(0, "continued"))
    assert (alert.status, alert.issued_at) == ("continued", T0)


def test_drills_are_never_active() -> None:
    (alert,) = apply(replace(record(0), drill=True, key="jma:drill:warning:2222300:03"))
    assert alert.drill
    assert not is_active(alert, T0 + timedelta(minutes=1))


def test_validity_and_maximum_age() -> None:
    (heat,) = apply(record(0, valid_until=T0 + timedelta(hours=15)))
    assert is_active(heat, T0 + timedelta(hours=14, minutes=59))
    assert not is_active(heat, T0 + timedelta(hours=15))
    (warning,) = apply(record(0), record(600, "continued"))
    assert is_active(warning, T0 + timedelta(minutes=600) + DEFAULT_MAX_AGE - timedelta(seconds=1))
    assert not is_active(warning, T0 + timedelta(minutes=600) + DEFAULT_MAX_AGE)
    # before the newest message, age counts from what was known by then
    assert not is_active(warning, T0 + timedelta(minutes=599), max_age=timedelta(hours=1))
    assert is_active(warning, T0 + timedelta(minutes=59), max_age=timedelta(hours=1))


def test_as_of_view_shows_the_status_then() -> None:
    (alert,) = apply(record(0), record(60, "cancelled"))
    assert as_of_view(alert, T0 + timedelta(minutes=30)).status == "issued"
    assert as_of_view(alert, T0 + timedelta(minutes=60)).status == "cancelled"


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=50),
            st.sampled_from(["issued", "continued", "cancelled"]),
            st.sampled_from(["03", "10"]),
        ),
        max_size=12,
    )
)
def test_any_history_is_idempotent_and_order_free(steps: list[tuple[int, str, str]]) -> None:
    statements = [
        record(minute, status, code=code, message=f"m{minute}") for minute, status, code in steps
    ]
    once = apply(*statements)
    assert apply(*reversed(statements)) == once
    assert apply(*statements, stored=once) == once
    for alert in once:
        assert alert.issued_at.tzinfo is not None
        if alert.ended_at is not None:
            assert alert.ended_at >= alert.issued_at
            assert not is_active(alert, alert.ended_at)
        # at most one alert per key is open
    open_keys = [a.key for a in once if AlertStatus(a.status).is_open]
    assert len(open_keys) == len(set(open_keys))


def test_alert_ids_are_utc() -> None:
    assert alert_id("k", datetime(2011, 3, 11, 14, 49, tzinfo=JST)) == "k@20110311T054900Z"
    assert alert_id("k", datetime(2011, 3, 11, 5, 49, tzinfo=UTC)) == "k@20110311T054900Z"


@pytest.mark.parametrize("minutes", [0, 59])
def test_open_alert_is_active_until_cancelled(minutes: int) -> None:
    (alert,) = apply(record(0), record(60, "cancelled"))
    assert is_active(alert, T0 + timedelta(minutes=minutes))


class _ManyAlerts:
    """A catalog stand-in that holds `count` open alerts (only list_alerts is used)."""

    def __init__(self, count: int) -> None:
        self.alerts = [
            replace(alert, id=f"a{n}") for n, alert in enumerate(apply(record(0)) * count)
        ]

    def list_alerts(self, **query: object) -> list[Alert]:
        limit = query["limit"]
        assert isinstance(limit, int)
        return self.alerts[:limit]


def test_too_many_alerts_is_limit_exceeded_never_truncated() -> None:
    query = AlertQuery(active=True, as_of=T0 + timedelta(minutes=1))
    full = cast(Catalog, _ManyAlerts(MAX_ALERTS))
    assert len(find_alerts(catalog=full, query=query)) == MAX_ALERTS
    with pytest.raises(LimitExceeded, match="narrow"):
        find_alerts(catalog=cast(Catalog, _ManyAlerts(MAX_ALERTS + 1)), query=query)
