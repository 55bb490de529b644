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
