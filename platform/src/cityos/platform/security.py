"""Who is calling and what they may read."""

from __future__ import annotations

from dataclasses import dataclass

from cityos.platform.domain.model import Domain


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: a client id (None when anonymous) and its granted scopes."""

    client_id: str | None
    scopes: frozenset[str]

    @property
    def readable_domains(self) -> frozenset[Domain]:
        """The domains whose data this caller may read."""
        return frozenset(domain for domain in Domain if domain.read_scope in self.scopes)

    def can_read(self, domain: Domain) -> bool:
        """Whether this caller may read data of `domain`."""
        return domain.read_scope in self.scopes
