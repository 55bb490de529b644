"""GraphQL types shared by several slices."""

from __future__ import annotations

import strawberry

from cityos.platform.domain.model import GeoPoint


@strawberry.type(name="PageInfo")
class PageInfo:
    """Where a page ends and whether another follows."""

    has_next_page: bool
    end_cursor: str | None


@strawberry.type(name="GeoPoint")
class GeoPointType:
    """A WGS 84 position."""

    lat: float
    lon: float

    @classmethod
    def of(cls, point: GeoPoint | None) -> GeoPointType | None:
        """The GraphQL form of a domain point."""
        return None if point is None else cls(lat=point.lat, lon=point.lon)


@strawberry.type(name="InputError", description="A mutation's input was refused; nothing changed")
class InputError:
    """An expected failure of a mutation: bad input, with the offending field when known."""

    message: str
    field: str | None = None


@strawberry.type(name="NotFoundError", description="The object a mutation names does not exist")
class NotFoundError:
    """An expected failure of a mutation: unknown id."""

    message: str
    id: strawberry.ID
