"""Facility kinds and hazards as connectors spell them (CONTRACT enum names, lower-case)."""

from __future__ import annotations

from collections.abc import Mapping

from cityos.platform.domain.errors import InvalidInput

# CONTRACT `FacilityKind`, lower-case: the value of FacilityRecord.kind.
FACILITY_KINDS = (
    "evacuation_site",
    "shelter",
    "aed",
    "tourism_facility",
    "medical_institution",
    "public_facility",
    "public_wifi",
    "event",
    "public_toilet",
    "cooling_shelter",
    "tsunami_evacuation_building",
    "relief_hospital",
    "first_aid_station",
    "other",
)

# The eight 災害種別 of 指定緊急避難場所 (災害対策基本法) -> CONTRACT `Hazard`, lower-case.
HAZARD_COLUMNS: Mapping[str, str] = {
    "洪水": "flood",
    "崖崩れ、土石流及び地滑り": "landslide",
    "高潮": "storm_surge",
    "地震": "earthquake",
    "津波": "tsunami",
    "大規模な火事": "large_fire",
    "内水氾濫": "inland_flood",
    "火山現象": "volcano",
}
HAZARDS = frozenset(HAZARD_COLUMNS.values())


def kind_option(kind: str) -> str:
    """A kind as the command line spells it: `first_aid_station` -> `first-aid-station`."""
    return kind.replace("_", "-")


def parse_kind(text: str) -> str:
    """A `--kind` value (first-aid-station, FIRST_AID_STATION, ...) as a FacilityRecord kind."""
    kind = text.strip().lower().replace("-", "_").replace(" ", "_")
    if kind not in FACILITY_KINDS:
        known = ", ".join(kind_option(k) for k in FACILITY_KINDS)
        raise InvalidInput(f"unknown facility kind {text[:60]!r} (known: {known})", field="kind")
    return kind
