"""Facility and dataset queries: who may see what, filters, distance order, paging.

A facility is visible when its dataset's licence is open (the dataset is public) or the
caller holds its domain's read scope; a dataset is visible when it is public or the caller
may see one of its facilities. Anything else looks exactly like nothing at all.

The catalog filters by kind only; hazard, distance and opening hours are applied here, on the
facilities of one city (thousands, not millions). Rows of several sources describing one place
share a site (facilities/merge.py) and are served as one facility listing every source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Dataset, Domain, Facility, GeoPoint
from cityos.platform.facilities.geo import great_circle_m
from cityos.platform.facilities.merge import group_sites
from cityos.platform.paging import Page, check_first, decode_cursor, encode_cursor
from cityos.platform.ports import Catalog
from cityos.platform.security import Principal

MAX_FACILITIES_PER_PAGE = 1000
TOKYO = ZoneInfo("Asia/Tokyo")
OPENING_HOURS = "opening_hours"
"""Attribute with per-weekday hours: {"mon": {"open": "08:30", "close": "17:15"}, "sun": None}."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
_BY_ID = "facility"
_BY_DISTANCE = "facility-near"


@dataclass(frozen=True, slots=True)
class Near:
    """A circle: facilities within `radius_m` metres (great-circle) of (lat, lon)."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class FacilityFilter:
    """What `facilities` narrows to; None means no restriction."""

    kind: str | None = None
    hazard: str | None = None
    near: Near | None = None
    open_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FacilitySource:
    """One source's row of a facility, with the dataset it came from (provenance)."""

    facility: Facility
    dataset: Dataset


@dataclass(frozen=True, slots=True)
class FoundFacility:
    """A visible facility (a site), its main dataset, its sources, its distance from `near`.

    `facility` is the site's main row (the first imported of those the caller may see), with
    the hazards of all of them; `sources` lists every row the caller may see, main first.
    """

    facility: Facility
    dataset: Dataset
    distance_m: float | None = None
    sources: tuple[FacilitySource, ...] = ()


def check_near(near: Near) -> None:
    """InvalidInput unless the point is a WGS 84 position and the radius positive and finite."""
    if not (math.isfinite(near.lat) and -90.0 <= near.lat <= 90.0):
        raise InvalidInput(f"near.lat must be within -90..90 (got {near.lat})", field="near")
    if not (math.isfinite(near.lon) and -180.0 <= near.lon <= 180.0):
        raise InvalidInput(f"near.lon must be within -180..180 (got {near.lon})", field="near")
    if not (math.isfinite(near.radius_m) and near.radius_m > 0):
        raise InvalidInput(
            f"near.radiusM must be a positive number of metres (got {near.radius_m})",
            field="near",
        )


def _seconds(clock: object) -> int | None:
    """`HH:MM` or `HH:MM:SS` (up to 24:00) as seconds after midnight; None if malformed."""
    if not isinstance(clock, str):
        return None
    parts = clock.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
        return None
    hours, minutes, seconds = (int(p) for p in [*parts, "00"][:3])
    if minutes > 59 or seconds > 59 or hours * 3600 + minutes * 60 + seconds > 24 * 3600:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _window(day: object) -> tuple[int, int] | None:
    """A day's (open, close) in seconds; None when closed, unknown, malformed or empty.

    A close equal to the open time says nothing sure (Yaizu lists a shop's Sunday as 9:00-9:00
    where every other day is 9:00-19:00), so it is not taken as open all day; sources write
    0:00-24:00 for that.
    """
    if not isinstance(day, Mapping):
        return None
    opens, closes = _seconds(day.get("open")), _seconds(day.get("close"))
    if opens is None or closes is None or opens == closes:
        return None
    return opens, closes


def is_open_at(attributes: Mapping[str, object], at: datetime) -> bool:
    """Whether the facility's weekly `opening_hours` (Japan time) cover `at`.

    A close before the open time runs past midnight (22:00-02:00 covers 01:00 of the next day).
    Facilities without hours, or whose day is malformed, are not known to be open: False.
    """
    hours = attributes.get(OPENING_HOURS)
    if not isinstance(hours, Mapping):
        return False
    local = at.astimezone(TOKYO)
    now = local.hour * 3600 + local.minute * 60 + local.second
    today = _window(hours.get(WEEKDAYS[local.weekday()]))
    if today is not None:
        opens, closes = today
        if (opens <= now < closes) if opens < closes else now >= opens:
            return True
    yesterday = _window(hours.get(WEEKDAYS[(local.weekday() - 1) % 7]))
    return yesterday is not None and yesterday[1] < yesterday[0] and now < yesterday[1]


def _can_see(principal: Principal, dataset: Dataset, domain: Domain) -> bool:
    return dataset.public or principal.can_read(domain)


def _matches(facility: Facility, filters: FacilityFilter) -> bool:
    if filters.hazard is not None and filters.hazard not in facility.hazards:
        return False
    return filters.open_at is None or is_open_at(facility.attributes, filters.open_at)


def _visible_sites(
    facilities: Iterable[Facility], datasets: Mapping[str, Dataset], principal: Principal
) -> list[tuple[FacilitySource, ...]]:
    """The rows the caller may see, grouped by the place they describe; main row first."""
    visible = [
        facility
        for facility in facilities
        if (dataset := datasets.get(facility.dataset_id)) is not None
        and _can_see(principal, dataset, facility.domain)
    ]
    return [
        tuple(FacilitySource(row, datasets[row.dataset_id]) for row in site)
        for site in group_sites(visible)
    ]


def _site(sources: tuple[FacilitySource, ...]) -> FacilitySource:
    """The site as one facility: its main row (id and fields) with every row's hazards."""
    main = sources[0]
    hazards = frozenset().union(*(row.facility.hazards for row in sources))
    return FacilitySource(replace(main.facility, hazards=hazards), main.dataset)


def _found(
    facilities: Iterable[Facility],
    datasets: Mapping[str, Dataset],
    principal: Principal,
    filters: FacilityFilter,
) -> list[FoundFacility]:
    found: list[FoundFacility] = []
    centre = None if filters.near is None else GeoPoint(filters.near.lat, filters.near.lon)
    for sources in _visible_sites(facilities, datasets, principal):
        site = _site(sources)
        facility, dataset = site.facility, site.dataset
        if not _matches(facility, filters):
            continue
        distance = None if centre is None else great_circle_m(centre, facility.location)
        if filters.near is not None and distance is not None and distance > filters.near.radius_m:
            continue
        found.append(
            FoundFacility(facility=facility, dataset=dataset, distance_m=distance, sources=sources)
        )
    return found


def _distance_key(item: FoundFacility) -> tuple[float, str]:
    return (0.0 if item.distance_m is None else item.distance_m), item.facility.id


def _distance_cursor(item: FoundFacility) -> str:
    distance, facility_id = _distance_key(item)
    return encode_cursor(_BY_DISTANCE, f"{distance!r}|{facility_id}")


def _id_key(item: FoundFacility) -> str:
    return item.facility.id


def _id_cursor(item: FoundFacility) -> str:
    return encode_cursor(_BY_ID, item.facility.id)


def _after_distance(after: str) -> tuple[float, str]:
    distance, sep, facility_id = decode_cursor(_BY_DISTANCE, after).partition("|")
    try:
        value = float(distance)
    except ValueError:
        value = math.nan
    if not sep or not math.isfinite(value):
        raise InvalidInput("malformed cursor in `after`", field="after")
    return value, facility_id


def _rest(found: list[FoundFacility], near: bool, after: str | None) -> list[FoundFacility]:
    """The matches after the cursor, in the list's order."""
    if near:
        found.sort(key=_distance_key)
        if after is None:
            return found
        position = _after_distance(after)
        return [item for item in found if _distance_key(item) > position]
    found.sort(key=_id_key)
    if after is None:
        return found
    after_id = decode_cursor(_BY_ID, after)
    return [item for item in found if item.facility.id > after_id]


def list_facilities(
    *,
    catalog: Catalog,
    principal: Principal,
    filters: FacilityFilter,
    first: int,
    after: str | None,
) -> Page[FoundFacility]:
    """A page of visible, matching facilities: nearest first with `near`, else by id."""
    check_first(first, cap=MAX_FACILITIES_PER_PAGE)
    if filters.near is not None:
        check_near(filters.near)
    if filters.open_at is not None and filters.open_at.tzinfo is None:
        raise InvalidInput("openAt must carry a UTC offset", field="openAt")
    kinds = None if filters.kind is None else frozenset({filters.kind})
    datasets = {dataset.id: dataset for dataset in catalog.list_datasets()}
    found = _found(catalog.list_facilities(kinds=kinds), datasets, principal, filters)
    rest = _rest(found, filters.near is not None, after)
    items = rest[:first]
    cursor_of = _id_cursor if filters.near is None else _distance_cursor
    return Page(
        items=items,
        has_next_page=len(rest) > first,
        end_cursor=cursor_of(items[-1]) if items else None,
        total_count=len(found),
    )


def list_datasets(*, catalog: Catalog, principal: Principal) -> list[Dataset]:
    """The datasets the caller may see, ordered by id: public ones, and ones with a visible row."""
    datasets = catalog.list_datasets()
    if all(dataset.public for dataset in datasets) or not principal.readable_domains:
        return [dataset for dataset in datasets if dataset.public]
    domains: dict[str, set[Domain]] = {}
    for facility in catalog.list_facilities(include_withdrawn=True):
        domains.setdefault(facility.dataset_id, set()).add(facility.domain)
    return [
        dataset
        for dataset in datasets
        if dataset.public or any(principal.can_read(d) for d in domains.get(dataset.id, ()))
    ]
