"""GraphQL types and resolvers for facilities and datasets (names as in CONTRACT.md)."""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from cityos.platform.api.graphql.common import GeoPointType, PageInfo
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.enums import DomainEnum
from cityos.platform.api.graphql.unset import given
from cityos.platform.domain.model import Dataset
from cityos.platform.facilities.service import (
    FacilityFilter,
    FacilitySource,
    FoundFacility,
    Near,
    list_datasets,
    list_facilities,
)


@strawberry.enum(name="FacilityKind", description="What a facility is")
class FacilityKindEnum(enum.Enum):
    """GraphQL FacilityKind (values are the stored kinds)."""

    EVACUATION_SITE = "evacuation_site"
    SHELTER = "shelter"
    AED = "aed"
    TOURISM_FACILITY = "tourism_facility"
    MEDICAL_INSTITUTION = "medical_institution"
    PUBLIC_FACILITY = "public_facility"
    PUBLIC_WIFI = "public_wifi"
    EVENT = "event"
    PUBLIC_TOILET = "public_toilet"
    COOLING_SHELTER = "cooling_shelter"
    TSUNAMI_EVACUATION_BUILDING = "tsunami_evacuation_building"
    RELIEF_HOSPITAL = "relief_hospital"
    FIRST_AID_STATION = "first_aid_station"
    OTHER = "other"

    @classmethod
    def of(cls, kind: str) -> FacilityKindEnum:
        """The GraphQL value of a stored kind (OTHER for a kind this schema does not name)."""
        try:
            return cls(kind)
        except ValueError:
            return cls.OTHER


@strawberry.enum(
    name="Hazard",
    description="A disaster type an evacuation site is designated for (災害対策基本法)",
)
class HazardEnum(enum.Enum):
    """GraphQL Hazard (values are the stored hazards)."""

    FLOOD = "flood"
    LANDSLIDE = "landslide"
    STORM_SURGE = "storm_surge"
    EARTHQUAKE = "earthquake"
    TSUNAMI = "tsunami"
    LARGE_FIRE = "large_fire"
    INLAND_FLOOD = "inland_flood"
    VOLCANO = "volcano"


_HAZARD_ORDER = {hazard.value: index for index, hazard in enumerate(HazardEnum)}


@strawberry.input(name="NearInput", description="A circle around a point (great-circle metres)")
class NearInput:
    """GraphQL NearInput."""

    lat: float
    lon: float
    radius_m: float


@strawberry.type(name="Dataset", description="An imported administrative source, with provenance")
class DatasetType:
    """GraphQL Dataset."""

    id: strawberry.ID
    name: str
    source: str
    licence: str
    public: bool = strawberry.field(description="Open licence: anyone may read it")
    fetched_at: datetime
    row_count: int = strawberry.field(description="Facilities in the source when last fetched")

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetType:
        """The GraphQL form of a dataset."""
        return cls(
            id=strawberry.ID(dataset.id),
            name=dataset.name,
            source=dataset.source,
            licence=dataset.licence,
            public=dataset.public,
            fetched_at=dataset.fetched_at,
            row_count=dataset.row_count,
        )


def _hazards(hazards: frozenset[str]) -> list[HazardEnum]:
    """The known hazards in CONTRACT.md's order."""
    ordered = sorted(hazards, key=lambda h: _HAZARD_ORDER.get(h, 99))
    return [HazardEnum(h) for h in ordered if h in _HAZARD_ORDER]


@strawberry.type(
    name="FacilitySource",
    description="One source's record of a facility (provenance): the dataset and its row",
)
class FacilitySourceType:
    """GraphQL FacilitySource."""

    dataset: DatasetType
    source_key: str = strawberry.field(description="The row's own id in that source (NO / ID)")
    name: str = strawberry.field(description="The name as that source spells it")
    location: GeoPointType = strawberry.field(description="The position that source gives")
    hazards: list[HazardEnum] = strawberry.field(description="The hazards that source flags")
    attributes: JSON | None = strawberry.field(description="That source's other columns")

    @classmethod
    def of(cls, source: FacilitySource) -> FacilitySourceType:
        """The GraphQL form of one source's row."""
        row = source.facility
        return cls(
            dataset=DatasetType.of(source.dataset),
            source_key=row.source_key,
            name=row.name,
            location=GeoPointType(lat=row.location.lat, lon=row.location.lon),
            hazards=_hazards(row.hazards),
            attributes=cast(JSON, row.attributes) if row.attributes else None,
        )


@strawberry.type(name="Facility", description="A place from administrative data")
class FacilityType:
    """GraphQL Facility."""

    id: strawberry.ID
    kind: FacilityKindEnum
    name: str
    name_kana: str | None
    address: str | None
    location: GeoPointType
    distance_m: float | None = strawberry.field(
        description="Great-circle metres from `near` (null without it)"
    )
    hazards: list[HazardEnum]
    domain: DomainEnum
    attributes: JSON | None = strawberry.field(
        description="The source's other columns; `opening_hours` per weekday where known"
    )
    dataset: DatasetType = strawberry.field(
        description="The dataset of the main record (the first imported of those you may see)"
    )
    sources: list[FacilitySourceType] = strawberry.field(
        description="Every source describing this place that you may see (same 共通ID, or the "
        "same name within 50 m), the main record first"
    )

    @classmethod
    def of(cls, found: FoundFacility) -> FacilityType:
        """The GraphQL form of a found facility."""
        facility = found.facility
        return cls(
            id=strawberry.ID(facility.id),
            kind=FacilityKindEnum.of(facility.kind),
            name=facility.name,
            name_kana=facility.name_kana,
            address=facility.address,
            location=GeoPointType(lat=facility.location.lat, lon=facility.location.lon),
            distance_m=found.distance_m,
            hazards=_hazards(facility.hazards),
            domain=DomainEnum.of(facility.domain),
            attributes=cast(JSON, facility.attributes) if facility.attributes else None,
            dataset=DatasetType.of(found.dataset),
            sources=[FacilitySourceType.of(source) for source in found.sources],
        )


@strawberry.type(name="FacilityConnection")
class FacilityConnection:
    """A page of facilities."""

    nodes: list[FacilityType]
    page_info: PageInfo
    total_count: int


async def resolve_facilities(
    info: Info[GraphQLContext, None],
    kind: FacilityKindEnum | None = strawberry.UNSET,
    near: NearInput | None = strawberry.UNSET,
    hazard: HazardEnum | None = strawberry.UNSET,
    open_at: datetime | None = strawberry.UNSET,
    first: int | None = 100,
    after: str | None = strawberry.UNSET,
) -> FacilityConnection:
    """Facilities the caller may see: nearest first with `near` (within radiusM), else by id."""
    kind, near, hazard = given(kind), given(near), given(hazard)
    open_at, after = given(open_at), given(after)
    filters = FacilityFilter(
        kind=None if kind is None else kind.value,
        hazard=None if hazard is None else hazard.value,
        near=None if near is None else Near(lat=near.lat, lon=near.lon, radius_m=near.radius_m),
        open_at=open_at,
    )
    page = await asyncio.to_thread(
        list_facilities,
        catalog=info.context.runtime.catalog,
        principal=info.context.principal,
        filters=filters,
        first=100 if first is None else first,
        after=after,
    )
    return FacilityConnection(
        nodes=[FacilityType.of(found) for found in page.items],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        total_count=page.total_count,
    )


async def resolve_datasets(info: Info[GraphQLContext, None]) -> list[DatasetType]:
    """The datasets the caller may see (public ones, and ones holding a visible facility)."""
    datasets = await asyncio.to_thread(
        list_datasets, catalog=info.context.runtime.catalog, principal=info.context.principal
    )
    return [DatasetType.of(dataset) for dataset in datasets]
