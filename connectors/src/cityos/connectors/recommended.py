"""The 推奨データセット (自治体標準データセット) CSV connectors and the generic facilities-csv.

Every format shares the common columns (ID/NO, 名称, 名称_カナ, 住所, 緯度, 経度 and the eight
災害種別 flags when present); a spec only names what differs. Other columns are kept as
attributes under their NFKC-normalised header names.
"""

from __future__ import annotations

from cityos.connectors.csvconnector import CsvConnector
from cityos.connectors.csvlayout import KANA_COLUMNS, NAME_COLUMNS, CsvSpec
from cityos.platform.config import Settings

EVACUATION_SITES = CsvSpec(
    "evacuation-sites", "指定緊急避難場所一覧", "evacuation_site", needs_hazards=True
)
SHELTERS = CsvSpec("shelters", "指定避難所一覧", "shelter")
AED = CsvSpec("aed", "AED設置箇所一覧", "aed")
TOURISM_FACILITIES = CsvSpec("tourism-facilities", "観光施設一覧", "tourism_facility")
MEDICAL_INSTITUTIONS = CsvSpec("medical-institutions", "医療機関一覧", "medical_institution")
PUBLIC_FACILITIES = CsvSpec("public-facilities", "公共施設一覧", "public_facility")
PUBLIC_WIFI = CsvSpec("public-wifi", "公衆無線LANアクセスポイント一覧", "public_wifi")
EVENTS = CsvSpec(
    "events",
    "イベント一覧",
    "event",
    name_columns=("イベント名", *NAME_COLUMNS),
    kana_columns=("イベント名_カナ", *KANA_COLUMNS),
    address_columns=("住所", "場所住所", "所在地"),
    strict_dates=("開始日", "終了日"),
)
# The Digital Agency's newer schema (所在地_連結表記 ...) and the older 推奨 one (住所).
PUBLIC_TOILETS = CsvSpec(
    "public-toilets",
    "公衆トイレ一覧",
    "public_toilet",
    address_columns=("所在地_連結表記", "住所", "所在地"),
)
# The Ministry of the Environment's 指定暑熱避難施設 list (日曜開放開始時刻 ... 土曜開放終了時刻).
COOLING_SHELTERS = CsvSpec(
    "cooling-shelters",
    "指定暑熱避難施設一覧",
    "cooling_shelter",
    name_columns=("指定暑熱避難施設の名称", *NAME_COLUMNS),
    address_columns=("所在地", "住所"),
    strict_dates=("指定日",),
    weekly_hours=True,
)
FACILITIES = CsvSpec("facilities-csv", "facility list", None)
SPECS = (
    EVACUATION_SITES,
    SHELTERS,
    AED,
    TOURISM_FACILITIES,
    MEDICAL_INSTITUTIONS,
    PUBLIC_FACILITIES,
    PUBLIC_WIFI,
    EVENTS,
    PUBLIC_TOILETS,
    COOLING_SHELTERS,
    FACILITIES,
)


def create_evacuation_sites(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: evacuation-sites`."""
    del settings
    return CsvConnector(EVACUATION_SITES)


def create_shelters(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: shelters`."""
    del settings
    return CsvConnector(SHELTERS)


def create_aed(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: aed`."""
    del settings
    return CsvConnector(AED)


def create_tourism_facilities(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: tourism-facilities`."""
    del settings
    return CsvConnector(TOURISM_FACILITIES)


def create_medical_institutions(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: medical-institutions`."""
    del settings
    return CsvConnector(MEDICAL_INSTITUTIONS)


def create_public_facilities(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: public-facilities`."""
    del settings
    return CsvConnector(PUBLIC_FACILITIES)


def create_public_wifi(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: public-wifi`."""
    del settings
    return CsvConnector(PUBLIC_WIFI)


def create_events(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: events`."""
    del settings
    return CsvConnector(EVENTS)


def create_public_toilets(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: public-toilets`."""
    del settings
    return CsvConnector(PUBLIC_TOILETS)


def create_cooling_shelters(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: cooling-shelters`."""
    del settings
    return CsvConnector(COOLING_SHELTERS)


def create_facilities_csv(settings: Settings) -> CsvConnector:
    """Entry point of `cityos.connectors: facilities-csv` (needs `configure(kind=...)`)."""
    del settings
    return CsvConnector(FACILITIES)
