"""VPWW54 / VPWW53 気象特別警報・警報・注意報: one alert per warning kind per municipality.

The 市町村等 part of the Body lists every municipality of the prefecture with every kind in
force (or 発表警報・注意報はなし), so a municipality is a group that each message lists
completely. VPWW53 (the older format, sent beside VPWW54 until 2023) says the same things:
its records rank after VPWW54's, so a pair of messages makes one alert.
"""

from __future__ import annotations

from collections.abc import Iterator

from cityos.connectors.jma.common import SOURCE, lineage
from cityos.connectors.jma.message import METEOROLOGY, RETRACTION, Message, findall, text
from cityos.platform.ports import AlertGroupRecord, AlertRecord, SkippedRecord

MUNICIPALITIES = "気象警報・注意報（市町村等）"
NOTHING_IN_FORCE = "発表警報・注意報はなし"
RANKS = {"VPWW54": 0, "VPWW53": 1}


def _status(jma_status: str) -> str:
    """発表 / 継続 / 解除 / 特別警報から警報 ... as issued, continued or cancelled."""
    if jma_status == "継続":
        return "continued"
    if "解除" in jma_status:
        return "cancelled"
    return "issued"  # 発表, and a lower kind replacing a higher one (警報から注意報 ...)


def parse_warnings(
    message: Message, *, type_code: str
) -> Iterator[AlertRecord | AlertGroupRecord | SkippedRecord]:
    """The alert statements of a VPWW54 or VPWW53 message, per municipality and kind."""
    if message.info_type == RETRACTION:
        yield SkippedRecord(
            kind=f"{type_code} {RETRACTION}",
            reason="a retracted warning message is not applied: the next message restates "
            "every warning in force",
            ref=message.ref,
        )
        return
    rank = RANKS.get(type_code, len(RANKS))
    body = message.root.find(f"{{{METEOROLOGY}}}Body")
    for warning in findall(body, "Warning", ns=METEOROLOGY):
        if warning.get("type") != MUNICIPALITIES:
            continue
        for item in findall(warning, "Item", ns=METEOROLOGY):
            area = text(item, "Area/Code", ns=METEOROLOGY)
            area_name = text(item, "Area/Name", ns=METEOROLOGY)
            if not area:
                continue
            group = lineage(message, "warning", area)
            listed = 0
            for kind in findall(item, "Kind", ns=METEOROLOGY):
                code = text(kind, "Code", ns=METEOROLOGY)
                name = text(kind, "Name", ns=METEOROLOGY)
                jma_status = text(kind, "Status", ns=METEOROLOGY)
                if not code or not name or jma_status == NOTHING_IN_FORCE:
                    continue
                listed += 1
                condition = text(kind, "Condition", ns=METEOROLOGY)
                yield AlertRecord(
                    key=lineage(message, "warning", area, code),
                    group=group,
                    source=SOURCE,
                    kind=name,
                    kind_code=code,
                    area=area,
                    area_name=area_name,
                    status=_status(jma_status),
                    drill=message.drill,
                    reported_at=message.reported_at,
                    message_id=message.ref,
                    headline=message.headline,
                    attributes={
                        "jma_status": jma_status,
                        "message_type": type_code,
                        "editorial_office": message.editorial_office,
                        **({"condition": condition} if condition else {}),
                    },
                    rank=rank,
                )
            if not listed:
                yield AlertGroupRecord(
                    group=group,
                    source=SOURCE,
                    status="listed",
                    drill=message.drill,
                    reported_at=message.reported_at,
                    message_id=message.ref,
                    rank=rank,
                )
