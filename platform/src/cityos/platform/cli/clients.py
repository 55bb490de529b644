"""`cityos clients ...`: register, list, rotate and revoke OAuth clients."""

from __future__ import annotations

from typing import Annotated

import typer

from cityos.platform.audit.service import record_cli_action
from cityos.platform.cli.output import JSON_OPTION, emit_json
from cityos.platform.cli.session import open_runtime
from cityos.platform.clients.admin import add_client, check_client_id, parse_scopes
from cityos.platform.domain.model import SCOPES, OAuthClient
from cityos.platform.ports import ClientSecret
from cityos.platform.timefmt import format_rfc3339

app = typer.Typer(
    help="Register, list, rotate and revoke OAuth clients (client_credentials grant).",
    no_args_is_help=True,
)
CLIENT_ID = typer.Argument(metavar="ID", help="client id", show_default=False)


def _client_document(client: OAuthClient) -> dict[str, object]:
    return {
        "client_id": client.id,
        "name": client.name,
        "scopes": sorted(client.scopes),
        "revoked": client.revoked,
        "created_at": format_rfc3339(client.created_at),
        "rotated_at": None if client.rotated_at is None else format_rfc3339(client.rotated_at),
        "revoked_at": None if client.revoked_at is None else format_rfc3339(client.revoked_at),
    }


def _echo_secret(secret: ClientSecret) -> None:
    client = secret.client
    typer.echo(f"client_id:     {client.id}")
    typer.echo(f"client_secret: {secret.client_secret}   (shown once; stored hashed)")
    typer.echo(f"scopes:        {' '.join(sorted(client.scopes)) or '(none)'}")
    typer.echo(
        "get a token:   curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
        "https://<server>/oauth/token"
    )


@app.command("add")
def add(
    name: Annotated[str, typer.Option("--name", help="who the client is, e.g. a partner's app")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes", help=f"space-separated scopes to grant; known: {' '.join(sorted(SCOPES))}"
        ),
    ],
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a client; print its id and secret once."""
    with open_runtime() as runtime:
        secret = add_client(
            auth=runtime.require_auth(), name=name, scopes=parse_scopes(scopes), grantor=None
        )
        record_cli_action(
            runtime.catalog,
            "clients add",
            [secret.client.id],
            name=name,
            scopes=sorted(secret.client.scopes),
        )
    if as_json:
        emit_json({"client_id": secret.client.id, "client_secret": secret.client_secret})
        return
    typer.echo(f"registered OAuth client {secret.client.name!r}")
    _echo_secret(secret)


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List registered clients (revoked ones too)."""
    with open_runtime() as runtime:
        clients = runtime.require_auth().list_clients()
    if as_json:
        emit_json([_client_document(client) for client in clients])
        return
    if not clients:
        typer.echo("no OAuth clients registered")
    for client in clients:
        state = " (revoked)" if client.revoked else ""
        typer.echo(f"{client.id}{state}  {client.name}")
        typer.echo(f"    scopes: {' '.join(sorted(client.scopes)) or '(none)'}")


@app.command("rotate")
def rotate(client_id: Annotated[str, CLIENT_ID], as_json: bool = JSON_OPTION) -> None:
    """Give a client a new secret, printed once; the old secret stops working."""
    with open_runtime() as runtime:
        secret = runtime.require_auth().rotate_client_secret(check_client_id(client_id))
        record_cli_action(runtime.catalog, "clients rotate", [secret.client.id])
    if as_json:
        emit_json({"client_id": secret.client.id, "client_secret": secret.client_secret})
        return
    typer.echo(f"new secret for OAuth client {secret.client.name!r}")
    _echo_secret(secret)
    typer.echo("tokens issued before stay valid until they expire; revoke them to stop them")


@app.command("revoke")
def revoke(client_id: Annotated[str, CLIENT_ID], as_json: bool = JSON_OPTION) -> None:
    """Revoke a client: no new tokens; running servers refuse its tokens within seconds."""
    with open_runtime() as runtime:
        auth = runtime.require_auth()
        before = auth.get_client(check_client_id(client_id))
        client = auth.revoke_client(client_id)
        record_cli_action(runtime.catalog, "clients revoke", [client.id])
    already = before is not None and before.revoked
    if as_json:
        emit_json({"client_id": client.id, "revoked": True, "already_revoked": already})
        return
    typer.echo(f"OAuth client {client.id} {'was already revoked' if already else 'revoked'}")
    typer.echo(
        "running API servers refuse its tokens within 2 s (at once when revoked through the API)"
    )
