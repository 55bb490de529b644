"""GSI 指定緊急避難場所・指定避難所 GeoJSON (国土地理院) -> facility records."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cityos.connectors.kinds import HAZARD_COLUMNS
from cityos.connectors.sources import read_limited, source_files
from cityos.connectors.values import in_japan
from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import FacilityRecord, RejectedRecord

NAME = "gsi-evacuation"
LICENCE = "国土地理院コンテンツ利用規約 (CC BY 4.0 compatible; 出典: 国土地理院)"
MAX_FILE_BYTES = 50 * 1024 * 1024
FILE_SUFFIXES = (".json", ".geojson")

EVACUATION_SITE = "evacuation_site"
SHELTER = "shelter"

NAME_COLUMN = "施設・場所名"
ADDRESS_COLUMN = "住所"
ID_COLUMN = "共通ID"
NO_COLUMN = "NO"
# Columns that only the 指定避難所 data has.
SHELTER_COLUMNS = ("指定緊急避難場所との住所同一", "受入対象者", "その他市町村長が必要と認める事項")
_FLAG_SET = frozenset({"1", "○", "◯", "〇"})
# 共通ID: "E", municipality code and serial, then 1xx for 指定避難所 and 2xx for 指定緊急避難場所.
_COMMON_ID = re.compile(r"^E\d{10}(?P<kind>[12])\d{2}$")


def _text(value: Any) -> str | None:
    """A property as stripped text (full-width spaces too), or None when blank."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        stripped = value.strip(" \t\r\n　")
        return stripped or None
    return None


def _flag(value: Any) -> bool:
    if value is True or value == 1:
        return True
    text = _text(value)
    return text in _FLAG_SET


def _kind(properties: Mapping[str, Any]) -> str | None:
    """指定緊急避難場所 or 指定避難所, from the 共通ID, else from the columns present."""
    match = _COMMON_ID.match(_text(properties.get(ID_COLUMN)) or "")
    if match:
        return EVACUATION_SITE if match["kind"] == "2" else SHELTER
    if any(column in properties for column in HAZARD_COLUMNS):
        return EVACUATION_SITE
    if any(column in properties for column in SHELTER_COLUMNS):
        return SHELTER
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_feature(feature: Any, line: int) -> FacilityRecord | RejectedRecord:
    """Turn one GeoJSON feature into a facility record, or say why it cannot be one."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return RejectedRecord(line=line, reason="not a GeoJSON Feature")
    properties = feature.get("properties")
    if not isinstance(properties, dict):
        return RejectedRecord(line=line, reason="feature has no properties")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        return RejectedRecord(line=line, reason="feature has no geometry")
    if geometry.get("type") != "Point":
        return RejectedRecord(
            line=line, reason=f"geometry is {str(geometry.get('type'))[:40]!r}, expected Point"
        )
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        return RejectedRecord(line=line, reason="Point has no [lon, lat] coordinates")
    lon, lat = _number(coordinates[0]), _number(coordinates[1])
    if lon is None or lat is None:
        return RejectedRecord(line=line, reason="Point coordinates are not numbers")
    if not in_japan(lat, lon):
        hint = " (lat/lon swapped? GeoJSON is [lon, lat])" if in_japan(lon, lat) else ""
        return RejectedRecord(
            line=line, reason=f"coordinates lat={lat}, lon={lon} are outside Japan{hint}"
        )
    name = _text(properties.get(NAME_COLUMN))
    if name is None:
        return RejectedRecord(line=line, reason=f"missing {NAME_COLUMN} (name)")
    source_key = _text(properties.get(ID_COLUMN)) or _text(properties.get(NO_COLUMN))
    if source_key is None:
        return RejectedRecord(line=line, reason=f"missing {ID_COLUMN} and {NO_COLUMN}")
    kind = _kind(properties)
    if kind is None:
        return RejectedRecord(
            line=line,
            reason="cannot tell 指定緊急避難場所 from 指定避難所 (no 共通ID, no known columns)",
        )
    hazards = frozenset(
        hazard for column, hazard in HAZARD_COLUMNS.items() if _flag(properties.get(column))
    )
    used = {NAME_COLUMN, ADDRESS_COLUMN, *HAZARD_COLUMNS}
    attributes = {key: value for key, value in properties.items() if key not in used}
    return FacilityRecord(
        source_key=source_key,
        kind=kind,
        name=name,
        lat=lat,
        lon=lon,
        address=_text(properties.get(ADDRESS_COLUMN)),
        hazards=hazards,
        attributes=attributes,
    )


def load_features(path: Path) -> list[Any]:
    """The features of one GeoJSON file; InvalidInput if it is not a readable GeoJSON file."""
    data = read_limited(path, max_bytes=MAX_FILE_BYTES, what="GSI")
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text: {exc.reason}", field="source") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            field="source",
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{path} is nested too deeply to be GeoJSON", field="source") from exc
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
        if isinstance(features, list):
            return features
        raise InvalidInput(f"{path}: FeatureCollection without a features list", field="source")
    if isinstance(document, dict) and document.get("type") == "Feature":
        return [document]
    raise InvalidInput(
        f"{path} is JSON but not a GeoJSON FeatureCollection (GSI 避難場所 data expected)",
        field="source",
    )


class GsiEvacuationConnector:
    """Reads GSI's 指定緊急避難場所 / 指定避難所 GeoJSON (per-municipality or nationwide)."""

    name = NAME
    default_licence = LICENCE
    file_suffixes = FILE_SUFFIXES

    def fetch(self, source: str) -> Iterator[FacilityRecord | RejectedRecord]:
        """Yield one record per feature (line = feature index + 1), or its rejection."""
        for path in source_files(source, connector=NAME, suffixes=FILE_SUFFIXES):
            for index, feature in enumerate(load_features(path)):
                yield parse_feature(feature, index + 1)


def create_connector(settings: Settings) -> GsiEvacuationConnector:
    """Entry point of `cityos.connectors: gsi-evacuation`."""
    del settings  # nothing to configure: the source path comes with each run
    return GsiEvacuationConnector()
