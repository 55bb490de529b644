"""Facility and dataset queries: visibility matrix, filters, distance order, paging, openAt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.domain.model import Dataset, Domain, Facility, GeoPoint
from cityos.platform.facilities.service import (
    MAX_FACILITIES_PER_PAGE,
    FacilityFilter,
    FoundFacility,
    Near,
    check_near,
    great_circle_m,
    is_open_at,
    list_datasets,
    list_facilities,
)
from cityos.platform.paging import Page, encode_cursor
from cityos.platform.ports import Catalog
from cityos.platform.security import Principal

JST = timezone(timedelta(hours=9))
FETCHED = datetime(2026, 7, 1, tzinfo=UTC)
ANONYMOUS = Principal(None, frozenset())
HEALTH = Principal("nurse", frozenset({"health:read"}))
DISASTER = Principal("fire", frozenset({"disaster:read"}))
EVERYTHING = Principal("city", frozenset({"disaster:read", "health:read", "tourism:read"}))
WEEKDAY = {"open": "08:30", "close": "17:15"}
OFFICE_HOURS = {"sun": None, **dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), WEEKDAY)}


def dataset(ds_id: str, *, public: bool) -> Dataset:
    licence = "CC BY 4.0" if public else "not stated"
    return Dataset(ds_id, ds_id, f"/data/{ds_id}.csv", licence, public, FETCHED, "sha256:0", 1, "t")


def facility(
    ds_id: str,
    key: str,
    kind: str,
    domain: Domain,
    *,
    at: tuple[float, float] = (34.6, 138.1),
    hazards: frozenset[str] = frozenset(),
    attributes: dict[str, Any] | None = None,
    withdrawn: bool = False,
) -> Facility:
    return Facility(
        id=f"{ds_id}:{key}",
        kind=kind,
        name=f"{kind} {key}",
        location=GeoPoint(*at),
        domain=domain,
        dataset_id=ds_id,
        source_key=key,
        hazards=hazards,
        attributes=attributes or {},
        withdrawn=withdrawn,
    )


class FakeCatalog:
    """The two catalog reads the facilities service makes, over fixed lists."""

    def __init__(self, datasets: Sequence[Dataset], facilities: Sequence[Facility]) -> None:
        self.datasets = sorted(datasets, key=lambda d: d.id)
        self.facilities = sorted(facilities, key=lambda f: f.id)
        self.facility_scans = 0

    def list_datasets(self) -> list[Dataset]:
        return list(self.datasets)

    def list_facilities(
        self, *, kinds: frozenset[str] | None = None, include_withdrawn: bool = False
    ) -> list[Facility]:
        self.facility_scans += 1
        return [
            f
            for f in self.facilities
            if (kinds is None or f.kind in kinds) and (include_withdrawn or not f.withdrawn)
        ]


def page(
    catalog: FakeCatalog,
    principal: Principal = EVERYTHING,
    *,
    first: int = 100,
    after: str | None = None,
    **filters: Any,
) -> Page[FoundFacility]:
    return list_facilities(
        catalog=cast(Catalog, catalog),
        principal=principal,
        filters=FacilityFilter(**filters),
        first=first,
        after=after,
    )


def ids(result: Page[FoundFacility]) -> list[str]:
    return [found.facility.id for found in result.items]


# ---------------------------------------------------------------- visibility


@pytest.fixture
def mixed() -> FakeCatalog:
    """An open disaster dataset, a closed health one, a closed tourism one, a closed empty one."""
    return FakeCatalog(
        [
            dataset("open-sites", public=True),
            dataset("closed-clinics", public=False),
            dataset("closed-sights", public=False),
            dataset("closed-empty", public=False),
        ],
        [
            facility("open-sites", "1", "evacuation_site", Domain.DISASTER),
            facility("open-sites", "2", "aed", Domain.HEALTH),  # open licence: public anyway
            facility("closed-clinics", "1", "medical_institution", Domain.HEALTH),
            facility("closed-clinics", "2", "medical_institution", Domain.HEALTH, withdrawn=True),
            facility("closed-sights", "1", "tourism_facility", Domain.TOURISM),
        ],
    )


@pytest.mark.parametrize(
    ("principal", "facilities", "datasets"),
    [
        (ANONYMOUS, ["open-sites:1", "open-sites:2"], ["open-sites"]),
        (DISASTER, ["open-sites:1", "open-sites:2"], ["open-sites"]),
        (
            HEALTH,
            ["closed-clinics:1", "open-sites:1", "open-sites:2"],
            ["closed-clinics", "open-sites"],
        ),
        (
            EVERYTHING,
            ["closed-clinics:1", "closed-sights:1", "open-sites:1", "open-sites:2"],
            ["closed-clinics", "closed-sights", "open-sites"],
        ),
    ],
)
def test_visibility_matrix(
    mixed: FakeCatalog, principal: Principal, facilities: list[str], datasets: list[str]
) -> None:
    result = page(mixed, principal)
    assert ids(result) == facilities
    assert result.total_count == len(facilities)
    assert [d.id for d in list_datasets(catalog=cast(Catalog, mixed), principal=principal)] == (
        datasets
    )
    # every visible facility's dataset is visible too (Facility.dataset is non-null)
    assert {found.dataset.id for found in result.items} <= set(datasets)


def test_hidden_facilities_look_like_nothing(mixed: FakeCatalog) -> None:
    clinics = page(mixed, ANONYMOUS, kind="medical_institution")
    nothing = page(mixed, ANONYMOUS, kind="relief_hospital")
    assert (clinics.items, clinics.total_count, clinics.end_cursor, clinics.has_next_page) == (
        nothing.items,
        nothing.total_count,
        nothing.end_cursor,
        nothing.has_next_page,
    )


def test_datasets_without_scopes_do_not_scan_facilities(mixed: FakeCatalog) -> None:
    list_datasets(catalog=cast(Catalog, mixed), principal=ANONYMOUS)
    assert mixed.facility_scans == 0
    list_datasets(catalog=cast(Catalog, mixed), principal=HEALTH)
    assert mixed.facility_scans == 1


def test_withdrawn_facilities_are_not_listed(mixed: FakeCatalog) -> None:
    assert "closed-clinics:2" not in ids(page(mixed, EVERYTHING))


# ---------------------------------------------------------------- filters and distance


def test_great_circle_distances() -> None:
    equator_degree = 2 * math.pi * 6_371_008.8 / 360
    assert great_circle_m(GeoPoint(0, 0), GeoPoint(0, 1)) == pytest.approx(equator_degree)
    assert great_circle_m(GeoPoint(0, 0), GeoPoint(1, 0)) == pytest.approx(equator_degree)
    assert great_circle_m(GeoPoint(34.6, 138.1), GeoPoint(34.6, 138.1)) == 0.0
    # Omaezaki city hall -> Yaizu city hall: 25.5 km north and 17.9 km east, about 31 km
    distance = great_circle_m(GeoPoint(34.63794, 138.12808), GeoPoint(34.866918, 138.323171))
    assert 30_500 < distance < 31_500
    # antipodes: half the circumference, no domain error from rounding
    half = great_circle_m(GeoPoint(0, 0), GeoPoint(0, 180))
    assert half == pytest.approx(math.pi * 6_371_008.8)


@pytest.mark.parametrize(
    ("near", "message"),
    [
        (Near(91, 0, 10), "near.lat"),
        (Near(math.nan, 0, 10), "near.lat"),
        (Near(0, -181, 10), "near.lon"),
        (Near(0, 0, 0), "near.radiusM"),
        (Near(0, 0, -5), "near.radiusM"),
        (Near(0, 0, math.inf), "near.radiusM"),
    ],
)
def test_bad_near_is_refused(near: Near, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_near(near)
    with pytest.raises(InvalidInput, match=message):
        page(FakeCatalog([], []), near=near)


@pytest.fixture
def line_of_sites() -> FakeCatalog:
    """Sites 100 m apart due north of (34.6, 138.1), ids in the reverse of distance order."""
    step = 100 / (2 * math.pi * 6_371_008.8 / 360)
    sites = [
        facility(
            "sites",
            f"{9 - n}",
            "evacuation_site",
            Domain.DISASTER,
            at=(34.6 + n * step, 138.1),
            hazards=frozenset({"tsunami"} if n % 2 == 0 else {"flood"}),
        )
        for n in range(10)
    ]
    return FakeCatalog([dataset("sites", public=True)], sites)


def test_near_sorts_by_distance_within_the_radius(line_of_sites: FakeCatalog) -> None:
    result = page(line_of_sites, near=Near(34.6, 138.1, 450))
    assert ids(result) == ["sites:9", "sites:8", "sites:7", "sites:6", "sites:5"]
    assert [round(cast(float, f.distance_m)) for f in result.items] == [0, 100, 200, 300, 400]
    assert result.total_count == 5
    assert ids(page(line_of_sites)) == [f"sites:{n}" for n in range(10)]  # no near: by id
    assert all(found.distance_m is None for found in page(line_of_sites).items)


def test_hazard_and_kind_filters(line_of_sites: FakeCatalog) -> None:
    tsunami = page(line_of_sites, hazard="tsunami", near=Near(34.6, 138.1, 10_000))
    assert ids(tsunami) == ["sites:9", "sites:7", "sites:5", "sites:3", "sites:1"]
    assert page(line_of_sites, hazard="volcano").total_count == 0
    assert page(line_of_sites, kind="evacuation_site").total_count == 10
    assert page(line_of_sites, kind="shelter").total_count == 0


# ---------------------------------------------------------------- paging


@pytest.mark.parametrize("near", [None, Near(34.6, 138.1, 10_000)])
def test_pages_cover_every_match_once(line_of_sites: FakeCatalog, near: Near | None) -> None:
    everything = ids(page(line_of_sites, near=near))
    seen: list[str] = []
    after = None
    while True:
        result = page(line_of_sites, near=near, first=3, after=after)
        assert result.total_count == 10
        seen += ids(result)
        if not result.has_next_page:
            break
        after = result.end_cursor
    assert seen == everything
    assert len(seen) == 10


def test_first_is_capped_with_a_clear_error(line_of_sites: FakeCatalog) -> None:
    assert len(page(line_of_sites, first=MAX_FACILITIES_PER_PAGE).items) == 10
    with pytest.raises(LimitExceeded, match="at most 1000"):
        page(line_of_sites, first=MAX_FACILITIES_PER_PAGE + 1)
    with pytest.raises(InvalidInput, match="negative"):
        page(line_of_sites, first=-1)
    empty = page(line_of_sites, first=0)
    assert (empty.items, empty.has_next_page, empty.end_cursor) == ([], True, None)


def test_cursors_belong_to_their_order(line_of_sites: FakeCatalog) -> None:
    by_id = page(line_of_sites, first=2).end_cursor
    near = Near(34.6, 138.1, 10_000)
    by_distance = page(line_of_sites, first=2, near=near).end_cursor
    with pytest.raises(InvalidInput, match="does not belong"):
        page(line_of_sites, near=near, after=by_id)
    with pytest.raises(InvalidInput, match="does not belong"):
        page(line_of_sites, after=by_distance)
    for forged in ("nonsense!", encode_cursor("facility-near", "far|sites:1")):
        with pytest.raises(InvalidInput, match="cursor"):
            page(line_of_sites, near=near, after=forged)


# ---------------------------------------------------------------- opening hours


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ("2026-07-06T08:29:59+09:00", False),  # Monday, before opening
        ("2026-07-06T08:30:00+09:00", True),
        ("2026-07-06T17:14:59+09:00", True),
        ("2026-07-06T17:15:00+09:00", False),  # closing time is exclusive
        ("2026-07-05T12:00:00+09:00", False),  # Sunday: closed (None)
        ("2026-07-04T12:00:00+09:00", False),  # Saturday: not in the hours = unknown
        ("2026-07-05T23:45:00+00:00", True),  # Monday 08:45 in Japan
        ("2026-07-06T08:15:00+00:00", False),  # Monday 17:15 in Japan: closed
    ],
)
def test_weekly_hours_in_japan_time(when: str, is_open: bool) -> None:
    assert is_open_at({"opening_hours": OFFICE_HOURS}, at(when)) is is_open


def test_hours_past_midnight_and_all_day() -> None:
    late = {"opening_hours": {"fri": {"open": "22:00", "close": "02:00"}}}
    assert is_open_at(late, at("2026-07-10T23:00:00+09:00"))  # Friday night
    assert is_open_at(late, at("2026-07-11T01:59:00+09:00"))  # early Saturday: still Friday's
    assert not is_open_at(late, at("2026-07-11T02:00:00+09:00"))
    assert not is_open_at(late, at("2026-07-10T01:00:00+09:00"))  # Friday early: Thursday's
    all_day = {"opening_hours": {"sat": {"open": "00:00", "close": "24:00"}}}
    assert is_open_at(all_day, at("2026-07-11T00:00:00+09:00"))
    assert is_open_at(all_day, at("2026-07-11T23:59:59+09:00"))
    with_seconds = {"opening_hours": {"sat": {"open": "09:00:30", "close": "10:00"}}}
    assert not is_open_at(with_seconds, at("2026-07-11T09:00:29+09:00"))
    assert is_open_at(with_seconds, at("2026-07-11T09:00:30+09:00"))


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"opening_hours": "8:30-17:15"},
        {"opening_hours": {"mon": "08:30-17:15"}},
        {"opening_hours": {"mon": {"open": "8:30", "close": "17:15"}}},
        {"opening_hours": {"mon": {"open": "08:30"}}},
        {"opening_hours": {"mon": {"open": "08:30", "close": "25:00"}}},
        {"opening_hours": {"mon": {"open": 830, "close": 1715}}},
        {"opening_hours": {"mon": {"open": "09:00", "close": "09:00"}}},  # Yaizu's typo
        {"opening_hours": {"sun": {"open": "09:00", "close": "09:00"}}},  # ... not overnight
    ],
)
def test_unknown_or_malformed_hours_are_not_open(attributes: dict[str, Any]) -> None:
    assert not is_open_at(attributes, at("2026-07-06T12:00:00+09:00"))


def test_open_at_keeps_only_facilities_known_to_be_open() -> None:
    shelter = facility(
        "cool",
        "1",
        "cooling_shelter",
        Domain.HEALTH,
        attributes={"opening_hours": OFFICE_HOURS},
    )
    catalog = FakeCatalog(
        [dataset("cool", public=True)],
        [shelter, replace(shelter, id="cool:2", source_key="2", attributes={})],
    )
    assert ids(page(catalog, ANONYMOUS, open_at=at("2026-07-06T09:00:00+09:00"))) == ["cool:1"]
    assert ids(page(catalog, ANONYMOUS, open_at=at("2026-07-05T09:00:00+09:00"))) == []
    assert page(catalog, ANONYMOUS).total_count == 2
    with pytest.raises(InvalidInput, match="offset"):
        page(catalog, open_at=datetime(2026, 7, 6, 9))
