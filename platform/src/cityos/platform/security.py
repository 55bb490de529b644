"""Who is calling and what they may read."""

from __future__ import annotations

from dataclasses import dataclass

from cityos.platform.domain.errors import PermissionDenied
from cityos.platform.domain.model import Domain

DEVICES_ADMIN = "devices:admin"
"""Scope to register, change, rotate and revoke devices and to read ingestion's dead letters."""


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

    def require(self, scope: str) -> None:
        """PermissionDenied unless this caller was granted `scope`."""
        if scope not in self.scopes:
            raise PermissionDenied(f"this operation needs the scope {scope!r}")
