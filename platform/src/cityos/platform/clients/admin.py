"""Client administration as the API and CLI offer it: validated, paged, one call per operation."""

from __future__ import annotations

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import SCOPES, OAuthClient
from cityos.platform.paging import Page, check_first, decode_cursor, encode_cursor
from cityos.platform.ports import AuthServer, ClientSecret

MAX_CLIENTS_PER_PAGE = 1000
MAX_ID_LENGTH = 200
_CURSOR_KIND = "client"


def parse_scopes(text: str) -> frozenset[str]:
    """Scopes from a space-separated string such as `"tourism:read export:read"`."""
    return frozenset(text.split())


def check_client_id(client_id: str) -> str:
    """A client id that is at least plausible (not empty, printable, not huge)."""
    if not client_id or len(client_id) > MAX_ID_LENGTH or not client_id.isprintable():
        raise InvalidInput(f"malformed client id {client_id[:80]!r}", field="id")
    return client_id


def list_clients(*, auth: AuthServer, first: int, after: str | None) -> Page[OAuthClient]:
    """A page of clients (revoked ones included), ordered by id."""
    check_first(first, cap=MAX_CLIENTS_PER_PAGE)
    after_id = None if after is None else decode_cursor(_CURSOR_KIND, after)
    clients = auth.list_clients()
    rest = [c for c in clients if after_id is None or c.id > after_id]
    items = rest[:first]
    return Page(
        items=items,
        has_next_page=len(rest) > first,
        end_cursor=encode_cursor(_CURSOR_KIND, items[-1].id) if items else None,
        total_count=len(clients),
    )


def add_client(
    *, auth: AuthServer, name: str, scopes: frozenset[str], grantor: frozenset[str] | None
) -> ClientSecret:
    """Register a client; through the API (`grantor` = the caller's scopes) only scopes the
    caller holds itself may be granted, so clients:admin alone cannot mint more power."""
    unknown = scopes - SCOPES
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {' '.join(sorted(unknown))}; known: {' '.join(sorted(SCOPES))}",
            field="scopes",
        )
    if grantor is not None and not scopes <= grantor:
        missing = " ".join(sorted(scopes - grantor))
        raise InvalidInput(
            f"you can only grant scopes you hold yourself: {missing}", field="scopes"
        )
    return auth.add_client(name=name, scopes=scopes)
