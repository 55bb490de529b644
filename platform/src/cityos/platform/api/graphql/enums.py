"""GraphQL enums mirroring the domain enums (names as in CONTRACT.md)."""

from __future__ import annotations

import enum

import strawberry

from cityos.platform.domain.model import Domain, Quality


@strawberry.enum(name="Domain", description="The use-case domain of a sensor, dataset or facility")
class DomainEnum(enum.Enum):
    """GraphQL Domain."""

    DISASTER = "disaster"
    TOURISM = "tourism"
    HEALTH = "health"

    def to_domain(self) -> Domain:
        """The domain value."""
        return Domain(self.value)

    @classmethod
    def of(cls, domain: Domain) -> DomainEnum:
        """The GraphQL value of a domain value."""
        return cls(domain.value)


@strawberry.enum(name="Quality", description="Quality flag of an observation")
class QualityEnum(enum.Enum):
    """GraphQL Quality."""

    GOOD = "good"
    SUSPECT = "suspect"
    BAD = "bad"

    @classmethod
    def of(cls, quality: Quality) -> QualityEnum:
        """The GraphQL value of a quality value."""
        return cls(quality.value)


@strawberry.enum(name="Aggregate", description="Function applied to the observations of a window")
class AggregateEnum(enum.Enum):
    """GraphQL Aggregate (values are the store's function names)."""

    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    FIRST = "first"
    LAST = "last"


@strawberry.enum(
    name="Fill",
    description=(
        "What empty windows become: NONE left out, NULL a null value, PREVIOUS the last "
        "non-empty value (null before the first), LINEAR interpolated in time between the "
        "neighbouring non-empty windows (null outside them)"
    ),
)
class FillEnum(enum.Enum):
    """GraphQL Fill (values are the platform's fill modes)."""

    NONE = "none"
    NULL = "null"
    PREVIOUS = "previous"
    LINEAR = "linear"
