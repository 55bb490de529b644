"""GraphQL types, queries and mutations for OAuth client administration (`clients:admin`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from cityos.platform.api.graphql.common import InputError, NotFoundError, PageInfo
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.unset import given
from cityos.platform.audit.types import admin_call
from cityos.platform.clients import admin
from cityos.platform.domain.errors import InvalidInput, NotFound
from cityos.platform.domain.model import CLIENTS_ADMIN, OAuthClient
from cityos.platform.ports import AuthServer, ClientRevoked, ClientSecret

T = TypeVar("T")


@strawberry.type(
    name="OAuthClient", description="A partner application that uses the client_credentials grant"
)
class OAuthClientType:
    """GraphQL OAuthClient."""

    id: strawberry.ID
    name: str
    scopes: list[str] = strawberry.field(description="scopes granted; tokens get these or fewer")
    revoked: bool
    created_at: datetime
    rotated_at: datetime | None = strawberry.field(description="when the secret last changed")
    revoked_at: datetime | None

    @classmethod
    def of(cls, client: OAuthClient) -> OAuthClientType:
        """The GraphQL form of a domain client."""
        return cls(
            id=strawberry.ID(client.id),
            name=client.name,
            scopes=sorted(client.scopes),
            revoked=client.revoked,
            created_at=client.created_at,
            rotated_at=client.rotated_at,
            revoked_at=client.revoked_at,
        )


@strawberry.type(name="OAuthClientConnection")
class OAuthClientConnection:
    """A page of clients."""

    nodes: list[OAuthClientType]
    page_info: PageInfo
    total_count: int


@strawberry.type(
    name="ClientCredentials",
    description="A client id and secret, shown once (the secret is stored only as a hash); "
    "POST them to /oauth/token with grant_type=client_credentials",
)
class ClientCredentialsType:
    """A client's id and freshly generated secret."""

    client_id: strawberry.ID
    client_secret: str
    client: OAuthClientType

    @classmethod
    def of(cls, secret: ClientSecret) -> ClientCredentialsType:
        """The GraphQL form of new credentials."""
        return cls(
            client_id=strawberry.ID(secret.client.id),
            client_secret=secret.client_secret,
            client=OAuthClientType.of(secret.client),
        )


@strawberry.input(name="AddClientInput")
class AddClientInput:
    """A client to register."""

    name: str
    scopes: list[str] = strawberry.field(
        description='scopes to grant, e.g. ["tourism:read", "export:read"]'
    )


AddClientResult = Annotated[ClientCredentialsType | InputError, strawberry.union("AddClientResult")]
RotateClientSecretResult = Annotated[
    ClientCredentialsType | InputError | NotFoundError,
    strawberry.union("RotateClientSecretResult"),
]
RevokeClientResult = Annotated[
    OAuthClientType | NotFoundError, strawberry.union("RevokeClientResult")
]


async def _admin_call(
    info: Info[GraphQLContext, None],
    call: Callable[[AuthServer], T],
    *,
    resources: Sequence[str] = (),
    created: Callable[[T], str] | None = None,
    details: dict[str, Any] | None = None,
) -> T:
    """Run an administration call in a thread after checking the `clients:admin` scope; audit it.

    Audit records never carry secrets: only ids, names, scopes and outcomes.
    """
    runtime = info.context.runtime
    return await admin_call(
        info,
        CLIENTS_ADMIN,
        lambda: call(runtime.require_auth()),
        resources=resources,
        created=created,
        details=details,
    )


def _client_id(secret: ClientSecret) -> str:
    return secret.client.id


async def resolve_clients(
    info: Info[GraphQLContext, None],
    first: int | None = 100,
    after: str | None = strawberry.UNSET,
) -> OAuthClientConnection:
    """Registered OAuth clients, ordered by id, paged (scope clients:admin)."""
    cursor = given(after)
    page = await _admin_call(
        info,
        lambda auth: admin.list_clients(
            auth=auth, first=100 if first is None else first, after=cursor
        ),
    )
    return OAuthClientConnection(
        nodes=[OAuthClientType.of(client) for client in page.items],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        total_count=page.total_count,
    )


async def resolve_client(
    info: Info[GraphQLContext, None], id: strawberry.ID
) -> OAuthClientType | None:
    """One client by id, or null (scope clients:admin)."""
    client = await _admin_call(
        info, lambda auth: auth.get_client(admin.check_client_id(str(id))), resources=[str(id)]
    )
    return None if client is None else OAuthClientType.of(client)


@strawberry.type
class ClientMutations:
    """OAuth client administration (scope clients:admin); expected failures are result types."""

    @strawberry.mutation(
        description="Register a client; its secret is shown once. Only scopes the caller "
        "holds itself can be granted."
    )
    async def add_client(
        self, info: Info[GraphQLContext, None], input: AddClientInput
    ) -> AddClientResult:
        """Register an OAuth client."""
        grantor = info.context.principal.scopes
        try:
            secret = await _admin_call(
                info,
                lambda auth: admin.add_client(
                    auth=auth,
                    name=input.name,
                    scopes=frozenset(input.scopes),
                    grantor=grantor,
                ),
                created=_client_id,
                details={"name": input.name, "scopes": sorted(set(input.scopes))},
            )
        except InvalidInput as exc:
            return InputError(message=str(exc), field=exc.field)
        return ClientCredentialsType.of(secret)

    @strawberry.mutation(
        description="Give a client a new secret (shown once); the old one stops working, "
        "tokens already issued stay valid until they expire"
    )
    async def rotate_client_secret(
        self, info: Info[GraphQLContext, None], id: strawberry.ID
    ) -> RotateClientSecretResult:
        """Rotate a client's secret."""
        try:
            secret = await _admin_call(
                info,
                lambda auth: auth.rotate_client_secret(admin.check_client_id(str(id))),
                resources=[str(id)],
            )
        except NotFound as exc:
            return NotFoundError(message=str(exc), id=id)
        except ClientRevoked as exc:
            return InputError(message=str(exc), field="id")
        except InvalidInput as exc:
            return InputError(message=str(exc), field=exc.field)
        return ClientCredentialsType.of(secret)

    @strawberry.mutation(
        description="Revoke a client: it gets no tokens, and its tokens stop working at once"
    )
    async def revoke_client(
        self, info: Info[GraphQLContext, None], id: strawberry.ID
    ) -> RevokeClientResult:
        """Revoke a client (idempotent)."""
        try:
            client = await _admin_call(
                info,
                lambda auth: auth.revoke_client(admin.check_client_id(str(id))),
                resources=[str(id)],
            )
        except (NotFound, InvalidInput) as exc:
            return NotFoundError(message=str(exc), id=id)
        return OAuthClientType.of(client)
