"""VTSE41 津波警報・注意報・予報: one alert per grade per tsunami forecast area and event.

Grades (警報等情報要素): 52/53 大津波警報 (53: just issued), 51 津波警報, 62 津波注意報,
71 津波予報（若干の海面変動）; 72/73 are 71 after a 警報/注意報 was lifted, 50/60 lift a
警報/注意報 (LastKind says which), 00 津波なし. A message lists every area of its event with
the grade now in force, so an area of an event is a group; a 取消 message withdraws the
whole event.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cityos.connectors.jma.common import SOURCE, lineage
from cityos.connectors.jma.message import (
    ELEMENT_BASIS,
    RETRACTION,
    SEISMOLOGY,
    Message,
    MessageError,
    find,
    findall,
    text,
)
from cityos.platform.ports import AlertGroupRecord, AlertRecord

MAJOR = ("大津波警報", "52")
WARNING = ("津波警報", "51")
ADVISORY = ("津波注意報", "62")
FORECAST = ("津波予報（若干の海面変動）", "71")
GRADES: dict[str, tuple[str, str]] = {
    "52": MAJOR,
    "53": MAJOR,
    "51": WARNING,
    "62": ADVISORY,
    "71": FORECAST,
    "72": FORECAST,
    "73": FORECAST,
}
LIFTING = frozenset({"50", "60", "72", "73"})  # the LastKind grade was lifted (解除)


def _heights(item: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    arrival = text(item, "FirstHeight/ArrivalTime", ns=SEISMOLOGY)
    condition = text(item, "FirstHeight/Condition", ns=SEISMOLOGY)
    if arrival or condition:
        found["first_arrival"] = arrival or condition
    height = find(item, f"MaxHeight/{{{ELEMENT_BASIS}}}TsunamiHeight", ns=SEISMOLOGY)
    if height is not None:
        value = (height.text or "").strip()
        shown = height.get("description") or height.get("condition") or ""
        found["max_height"] = shown if value in ("", "NaN") else f"{value}m"
    return {key: value for key, value in found.items() if value}


def _record(
    message: Message, area: str, area_name: str, grade: tuple[str, str], status: str, extra: Any
) -> AlertRecord:
    return AlertRecord(
        key=lineage(message, "tsunami", message.event_id, area, grade[1]),
        group=lineage(message, "tsunami", message.event_id, area),
        source=SOURCE,
        kind=grade[0],
        kind_code=grade[1],
        area=area,
        area_name=area_name,
        status=status,
        drill=message.drill,
        reported_at=message.reported_at,
        message_id=message.ref,
        headline=message.headline,
        attributes={"event_id": message.event_id, **extra},
    )


def parse_tsunami(message: Message) -> Iterator[AlertRecord | AlertGroupRecord]:
    """The alert statements of a VTSE41 message, per forecast area."""
    if not message.event_id:
        raise MessageError("a tsunami message without Head/EventID")
    if message.info_type == RETRACTION:
        yield AlertGroupRecord(
            group=lineage(message, "tsunami", message.event_id),
            source=SOURCE,
            status="cancelled",
            drill=message.drill,
            reported_at=message.reported_at,
            message_id=message.ref,
            prefix=True,
        )
        return
    body = message.root.find(f"{{{SEISMOLOGY}}}Body")
    for item in findall(body, "Tsunami/Forecast/Item", ns=SEISMOLOGY):
        area = text(item, "Area/Code", ns=SEISMOLOGY)
        area_name = text(item, "Area/Name", ns=SEISMOLOGY)
        code = text(item, "Category/Kind/Code", ns=SEISMOLOGY)
        last = text(item, "Category/LastKind/Code", ns=SEISMOLOGY)
        if not area or not code:
            raise MessageError("a tsunami forecast item without Area/Code or Kind/Code")
        extra = {"jma_code": code, "jma_last_code": last, **_heights(item)}
        grade = GRADES.get(code)
        lifted = GRADES.get(last)
        if code in LIFTING and lifted is not None and lifted != grade:
            yield _record(message, area, area_name, lifted, "cancelled", extra)
        if grade is not None:
            fresh = code == "53" or GRADES.get(last) != grade
            yield _record(
                message, area, area_name, grade, "issued" if fresh else "continued", extra
            )
        elif code not in LIFTING and code != "00":
            raise MessageError(f"unknown tsunami grade code {code[:8]!r}")
