"""VPFT50 熱中症警戒アラート (Ministry of the Environment and JMA): one alert per area and day.

The message names its area in Head/Title (埼玉県熱中症警戒アラート) and its day in the text
(今日（１１日） or 明日（１１日）); it is valid until the end of that day in Japan. The
evening's 第1号 and the morning's 第2号 for the same day are one alert.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

from cityos.connectors.jma.areas import heat_area_code
from cityos.connectors.jma.common import SOURCE, lineage
from cityos.connectors.jma.message import (
    CORRECTION,
    METEOROLOGY,
    RETRACTION,
    Message,
    MessageError,
    find,
    text,
)
from cityos.platform.ports import AlertRecord

JST = timezone(timedelta(hours=9), "JST")
_TITLE = re.compile(r"^(?P<area>.+?)(?P<kind>熱中症(?:特別)?警戒アラート)$")
_DAY = re.compile(r"(?P<which>今日|明日)\((?P<day>\d{1,2})日\)")
_OFFICE_IN_NAME = re.compile(r"_VPFT50_(?P<code>\d{6})\.xml$", re.IGNORECASE)
_MAX_HEADLINE = 300


def _target_day(message: Message, body_text: str) -> date:
    """The day the alert is for: from 今日/明日（DD日） in the text, else the report day."""
    reported = message.reported_at.astimezone(JST).date()
    match = _DAY.search(unicodedata.normalize("NFKC", body_text))
    if match is None:
        return reported
    day = reported + timedelta(days=1 if match["which"] == "明日" else 0)
    if day.day != int(match["day"]):
        raise MessageError(f"the text's day ({match['day']}日) does not follow the report time")
    return day


def _first_sentence(body_text: str) -> str | None:
    sentence = body_text.strip().split("。", 1)[0].strip()
    return f"{sentence[:_MAX_HEADLINE]}。" if sentence else None


def parse_heat(message: Message) -> Iterator[AlertRecord]:
    """The alert statement of a VPFT50 message."""
    match = _TITLE.match(message.head_title)
    if match is None:
        raise MessageError(f"not a heat-stroke alert title: {message.head_title[:60]!r}")
    area_name = match["area"]
    from_name = _OFFICE_IN_NAME.search(message.ref)
    area = heat_area_code(area_name) or (from_name["code"] if from_name else None)
    if area is None:
        raise MessageError(f"unknown heat-stroke alert area {area_name[:40]!r}")
    comment = find(message.root, f"{{{METEOROLOGY}}}Body/Comment/Text", ns=METEOROLOGY)
    body_text = text(comment)
    day = _target_day(message, body_text)
    status = {RETRACTION: "cancelled", CORRECTION: "continued"}.get(message.info_type, "issued")
    yield AlertRecord(
        key=lineage(message, "heat", area, day.isoformat()),
        group=lineage(message, "heat", area, day.isoformat()),
        source=SOURCE,
        kind=match["kind"],
        kind_code=None,
        area=area,
        area_name=area_name,
        status=status,
        drill=message.drill,
        reported_at=message.reported_at,
        message_id=message.ref,
        valid_until=datetime.combine(day + timedelta(days=1), time(0), tzinfo=JST),
        headline=message.headline or _first_sentence(body_text),
        attributes={"day": day.isoformat(), "editorial_office": message.editorial_office},
    )
