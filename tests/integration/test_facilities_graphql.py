"""facilities / datasets through GraphQL on the real SQL catalog, with the real sample data.

The schema here holds only the two fields (the API's Query wires the same resolvers); the
data is imported by the registered connectors from tests/fixtures, bytes as published.
"""

from __future__ import annotations

import asyncio
import csv
import math
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.errors import ClassifyErrors
from cityos.platform.api.graphql.scalars import SCALAR_MAP
from cityos.platform.config import Settings
from cityos.platform.connectors_admin import configured, load_connector
from cityos.platform.facilities.types import (
    DatasetType,
    FacilityConnection,
    resolve_datasets,
    resolve_facilities,
)
from cityos.platform.imports import import_facilities
from cityos.platform.runtime import Runtime
from cityos.platform.security import Principal

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GSI = FIXTURES / "gsi-hinanbasho"
CSV = FIXTURES / "recommended-datasets"
COOLING = CSV / "yaizu_machinakasuzumidokoro_cp932_historic.csv"
CITY_HALL = (34.63794, 138.12808)  # 御前崎市役所, 池新田5585 (Wikipedia: 34°38'17"N 138°07'41"E)
PDL = "公共データ利用規約（第1.0版）"
TAKAMATSU_TERMS = "高松市オープンデータ利用規約"  # no open licence named: not public
ANONYMOUS = Principal(None, frozenset())
HEALTH = Principal("clinic-app", frozenset({"health:read"}))

# The GSI 指定緊急避難場所 of Omaezaki (all 14 flagged 津波) within 5 km of the city hall,
# nearest first; distances by the spherical law of cosines, from the GeoJSON with plain json.
TSUNAMI_SITES_5KM = [
    "浜岡中学校　運動場",  # 647.7 m
    "池新田高校　運動場",  # 1527.4
    "御前崎第一小学校運動場",  # 1826.7
    "浜岡福祉会館　駐車場",  # 1933.5
    "佐倉地区センター　駐車場",  # 2832.8
    "浜岡東小学校　運動場",  # 2877.2
    "高松グラウンド",  # 2908.1
    "浜岡北小学校　運動場",  # 3562.0
    "朝比奈中央広場",  # 3813.9
    "比木グラウンド",  # 3938.2
    "新野柏木広場",  # 4604.5 (then 白羽小学校 at 6450.5 m, outside)
]


@strawberry.type
class Query:
    """Just the facility fields."""

    facilities: FacilityConnection = strawberry.field(resolver=resolve_facilities)
    datasets: list[DatasetType] = strawberry.field(resolver=resolve_datasets)


SCHEMA = strawberry.Schema(
    query=Query, config=StrawberryConfig(scalar_map=SCALAR_MAP), extensions=[ClassifyErrors]
)
FACILITIES = """
query($kind: FacilityKind, $near: NearInput, $hazard: Hazard, $openAt: DateTime,
      $first: Int, $after: String) {
  facilities(kind: $kind, near: $near, hazard: $hazard, openAt: $openAt, first: $first,
             after: $after) {
    nodes { id kind name nameKana address location { lat lon } distanceM hazards domain
            attributes dataset { id name source licence public fetchedAt rowCount } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
DATASETS = "{ datasets { id name licence public rowCount fetchedAt } }"


def law_of_cosines_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle metres by the spherical law of cosines (an oracle independent of haversine)."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return 6_371_008.8 * math.acos(min(1.0, c))


# every sample: (connector, file, --kind, --columns, licence)
IMPORTS: list[tuple[str, Path, str | None, str | None, str | None]] = [
    ("gsi-evacuation", GSI, None, None, None),
    ("aed", CSV / "yaizu_222127_aed.csv", None, None, PDL),
    ("evacuation-sites", CSV / "yaizu_222127_evacuation_space.csv", None, None, PDL),
    ("shelters", CSV / "yaizu_222127_hinannjo.csv", None, None, PDL),
    ("public-wifi", CSV / "yaizu_222127_public_wireless_lan.csv", None, None, PDL),
    ("public-toilets", CSV / "yaizu_222127_public_toilet.csv", None, None, PDL),
    ("tourism-facilities", CSV / "yaizu_222127_tourism_sights.csv", None, None, PDL),
    ("public-facilities", CSV / "yaizu_222127_facilities_smartmap.csv", None, None, PDL),
    (
        "facilities-csv",
        CSV / "yaizu_222127_kyuugosho_cp932_historic.csv",
        "first-aid-station",
        None,
        PDL,
    ),
    ("cooling-shelters", COOLING, None, None, PDL),
    (
        "facilities-csv",
        CSV / "takamatsu_372013_hospital_data.csv",
        "medical-institution",
        "key=#property,phone=telephone number,opened=openingDate",
        TAKAMATSU_TERMS,
    ),
]
ALL_ROWS = 36 + 82 + 31 + 56 + 17 + 112 + 28 + 28 + 7 + 56 + 627


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("facilities")))
    for name, source, kind, columns, licence in IMPORTS:
        connector = configured(load_connector(runtime.settings, name), kind=kind, columns=columns)
        import_facilities(
            catalog=runtime.catalog, connector=connector, source=str(source), licence=licence
        )
    yield runtime
    runtime.close()


def query(
    runtime: Runtime, document: str, principal: Principal = ANONYMOUS, **variables: Any
) -> dict[str, Any]:
    result = asyncio.run(
        SCHEMA.execute(
            document,
            variable_values=variables,
            context_value=GraphQLContext(runtime=runtime, principal=principal),
        )
    )
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


def error_code(runtime: Runtime, document: str, **variables: Any) -> str:
    result = asyncio.run(
        SCHEMA.execute(
            document,
            variable_values=variables,
            context_value=GraphQLContext(runtime=runtime, principal=ANONYMOUS),
        )
    )
    assert result.errors, result.data
    return str((result.errors[0].extensions or {})["code"])


def test_schema_matches_the_contract() -> None:
    sdl = re.sub(r'"""[^"]*"""\s*|"[^"\n]*"\s*', "", SCHEMA.as_str())
    sdl = " ".join(sdl.split())
    assert (
        "facilities(kind: FacilityKind, near: NearInput, hazard: Hazard, openAt: DateTime, "
        "first: Int! = 100, after: String): FacilityConnection!"
        in sdl
        or "facilities(kind: FacilityKind, near: NearInput, hazard: Hazard, openAt: DateTime, "
        "first: Int = 100, after: String): FacilityConnection!"
        in sdl
    )
    assert "datasets: [Dataset!]!" in sdl
    for part in [
        "type Facility { id: ID! kind: FacilityKind! name: String! nameKana: String "
        "address: String location: GeoPoint! distanceM: Float hazards: [Hazard!]! "
        "domain: Domain! attributes: JSON dataset: Dataset! sources: [FacilitySource!]! }",
        "type FacilitySource { dataset: Dataset! sourceKey: String! name: String! "
        "location: GeoPoint! hazards: [Hazard!]! attributes: JSON }",
        "type Dataset { id: ID! name: String! source: String! licence: String! public: Boolean! "
        "fetchedAt: DateTime! rowCount: Int! }",
        "input NearInput { lat: Float! lon: Float! radiusM: Float! }",
        "enum Hazard { FLOOD LANDSLIDE STORM_SURGE EARTHQUAKE TSUNAMI LARGE_FIRE INLAND_FLOOD "
        "VOLCANO }",
        "enum FacilityKind { EVACUATION_SITE SHELTER AED TOURISM_FACILITY MEDICAL_INSTITUTION "
        "PUBLIC_FACILITY PUBLIC_WIFI EVENT PUBLIC_TOILET COOLING_SHELTER "
        "TSUNAMI_EVACUATION_BUILDING RELIEF_HOSPITAL FIRST_AID_STATION OTHER }",
        "type FacilityConnection { nodes: [Facility!]! pageInfo: PageInfo! totalCount: Int! }",
    ]:
        assert part in sdl, part


def test_tsunami_sites_near_omaezaki_city_hall_nearest_first(runtime: Runtime) -> None:
    near = {"lat": CITY_HALL[0], "lon": CITY_HALL[1], "radiusM": 5000}
    data = query(runtime, FACILITIES, near=near, hazard="TSUNAMI")["facilities"]
    nodes = data["nodes"]
    assert [node["name"] for node in nodes] == TSUNAMI_SITES_5KM
    assert data["totalCount"] == len(TSUNAMI_SITES_5KM)
    for node in nodes:
        expected = law_of_cosines_m(*CITY_HALL, node["location"]["lat"], node["location"]["lon"])
        assert node["distanceM"] == pytest.approx(expected, abs=0.01)
        assert node["distanceM"] <= 5000
        assert (node["kind"], node["domain"]) == ("EVACUATION_SITE", "DISASTER")
        assert node["hazards"] == ["EARTHQUAKE", "TSUNAMI"]
        assert node["dataset"]["public"] is True
        assert node["dataset"]["licence"].startswith("国土地理院コンテンツ利用規約")
    distances = [node["distanceM"] for node in nodes]
    assert distances == sorted(distances)
    assert round(distances[0]) == 648  # 浜岡中学校 運動場, 池新田3923-1
    nearest = nodes[0]
    assert nearest["address"] == "静岡県御前崎市池新田3923-1"
    assert nearest["attributes"]["共通ID"] == "E2222300019201"
    assert nearest["dataset"]["rowCount"] == 14
    # shelters (指定避難所) carry no hazard flags: the filter leaves them out
    everything = query(runtime, FACILITIES, near=near, first=1000)["facilities"]
    kinds = {node["kind"] for node in everything["nodes"]}
    assert {"EVACUATION_SITE", "SHELTER"} <= kinds
    all_tsunami = query(runtime, FACILITIES, hazard="TSUNAMI", first=1000)["facilities"]
    assert all_tsunami["totalCount"] == 14 + 26  # Omaezaki (GSI) and Yaizu (CSV, 30 km away)
    assert all(node["distanceM"] is None for node in all_tsunami["nodes"])


def test_distance_pages_follow_on(runtime: Runtime) -> None:
    near = {"lat": CITY_HALL[0], "lon": CITY_HALL[1], "radiusM": 5000}
    names: list[str] = []
    after = None
    while True:
        data = query(runtime, FACILITIES, near=near, hazard="TSUNAMI", first=3, after=after)
        names += [node["name"] for node in data["facilities"]["nodes"]]
        info = data["facilities"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert names == TSUNAMI_SITES_5KM


def test_visibility_of_facilities_and_datasets(runtime: Runtime) -> None:
    hospitals = {"kind": "MEDICAL_INSTITUTION", "first": 1000}
    anonymous = query(runtime, FACILITIES, **hospitals)["facilities"]
    assert (anonymous["nodes"], anonymous["totalCount"]) == ([], 0)
    health = query(runtime, FACILITIES, HEALTH, **hospitals)["facilities"]
    assert health["totalCount"] == 627  # 628 rows, one without coordinates
    assert {node["domain"] for node in health["nodes"]} == {"HEALTH"}
    assert {node["dataset"]["public"] for node in health["nodes"]} == {False}
    # open-licence health data (Yaizu's AEDs under PDL 1.0) is public
    aeds = query(runtime, FACILITIES, kind="AED", first=1000)["facilities"]
    assert aeds["totalCount"] == 82
    public_sets = [d["id"] for d in query(runtime, DATASETS)["datasets"]]
    assert public_sets == [
        "aed:yaizu_222127_aed.csv",
        "cooling-shelters:yaizu_machinakasuzumidokoro_cp932_historic.csv",
        "evacuation-sites:yaizu_222127_evacuation_space.csv",
        "facilities-csv:yaizu_222127_kyuugosho_cp932_historic.csv",
        "gsi-evacuation:omaezaki_222232_designated_shelters.geojson.json",
        "gsi-evacuation:omaezaki_222232_emergency_evacuation_sites.geojson.json",
        "public-facilities:yaizu_222127_facilities_smartmap.csv",
        "public-toilets:yaizu_222127_public_toilet.csv",
        "public-wifi:yaizu_222127_public_wireless_lan.csv",
        "shelters:yaizu_222127_hinannjo.csv",
        "tourism-facilities:yaizu_222127_tourism_sights.csv",
    ]
    health_sets = query(runtime, DATASETS, HEALTH)["datasets"]
    takamatsu = [d for d in health_sets if d["id"] not in public_sets]
    assert takamatsu == [
        {
            "id": "facilities-csv:takamatsu_372013_hospital_data.csv",
            "name": "takamatsu_372013_hospital_data.csv",
            "licence": TAKAMATSU_TERMS,
            "public": False,
            "rowCount": 627,
            "fetchedAt": takamatsu[0]["fetchedAt"],
        }
    ]
    assert takamatsu[0]["fetchedAt"].endswith("+09:00")


def _open_rows(when: datetime) -> set[str]:
    """IDs of the cooling shelters whose CSV hours cover `when` (read here with csv, not cityos)."""
    days = "月火水木金土日"[when.weekday()]
    minute = when.hour * 60 + when.minute
    rows = csv.DictReader(COOLING.read_text(encoding="cp932").splitlines())
    open_ids: set[str] = set()
    for row in rows:
        start, end = row[f"{days}曜開放開始時刻"].strip(), row[f"{days}曜開放終了時刻"].strip()
        if ":" not in start or ":" not in end:
            continue
        (h1, m1), (h2, m2) = (map(int, start.split(":")), map(int, end.split(":")))
        if h1 * 60 + m1 <= minute < h2 * 60 + m2:  # no overnight hours in this file
            open_ids.add(row["ID"])
    return open_ids


@pytest.mark.parametrize(
    "when",
    [
        "2026-08-02T10:00:00+09:00",  # Sunday morning
        "2026-08-03T08:45:00+09:00",  # Monday, just after the offices open
        "2026-08-03T18:30:00+09:00",  # Monday evening
        "2026-08-04T09:00:00+00:00",  # Tuesday 18:00 in Japan, given in UTC
        "2026-08-08T12:00:00+09:00",  # Saturday noon
    ],
)
def test_open_at_on_the_yaizu_cooling_shelters(runtime: Runtime, when: str) -> None:
    moment = datetime.fromisoformat(when).astimezone(ZoneInfo("Asia/Tokyo"))
    data = query(runtime, FACILITIES, kind="COOLING_SHELTER", openAt=when, first=1000)
    found = {node["id"].rsplit(":", 1)[1] for node in data["facilities"]["nodes"]}
    expected = _open_rows(moment)
    assert found == expected
    assert data["facilities"]["totalCount"] == len(expected)
    assert 0 < len(expected) < 56


def test_open_at_leaves_out_facilities_without_hours(runtime: Runtime) -> None:
    data = query(runtime, FACILITIES, openAt="2026-08-03T10:00:00+09:00", first=1000)
    assert {node["kind"] for node in data["facilities"]["nodes"]} == {"COOLING_SHELTER"}


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"first": 1001}, "LIMIT_EXCEEDED"),
        ({"first": -1}, "BAD_USER_INPUT"),
        ({"after": "garbage"}, "BAD_USER_INPUT"),
        ({"near": {"lat": 34.6, "lon": 138.1, "radiusM": 0}}, "BAD_USER_INPUT"),
        ({"openAt": "2026-08-03T10:00:00"}, "BAD_USER_INPUT"),
        ({"hazard": "METEOR"}, "BAD_USER_INPUT"),
    ],
)
def test_bad_arguments_have_codes(runtime: Runtime, variables: dict[str, Any], code: str) -> None:
    assert error_code(runtime, FACILITIES, **variables) == code


def test_a_full_page_of_1000_is_allowed(runtime: Runtime) -> None:
    data = query(runtime, FACILITIES, HEALTH, first=1000)["facilities"]
    assert len(data["nodes"]) == 1000
    assert data["pageInfo"]["hasNextPage"] is True
    assert data["totalCount"] == ALL_ROWS
    anonymous = query(runtime, FACILITIES, first=1000)["facilities"]
    assert anonymous["totalCount"] == ALL_ROWS - 627


def test_a_sunday_from_nine_to_nine_is_not_taken_as_open(runtime: Runtime) -> None:
    shop = "cooling-shelters:yaizu_machinakasuzumidokoro_cp932_historic.csv:000000000024"

    def open_ids(when: str) -> set[str]:
        data = query(runtime, FACILITIES, kind="COOLING_SHELTER", openAt=when, first=1000)
        return {node["id"] for node in data["facilities"]["nodes"]}

    assert shop in open_ids("2026-08-03T18:00:00+09:00")  # Monday 9:00-19:00
    assert shop not in open_ids("2026-08-02T18:00:00+09:00")  # Sunday 9:00-9:00: unknown
    assert shop not in open_ids("2026-08-03T08:00:00+09:00")  # and no overnight spill
