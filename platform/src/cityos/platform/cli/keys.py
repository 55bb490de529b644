"""`cityos keys ...`: the authorization server's token-signing keys."""

from __future__ import annotations

import typer

from cityos.platform.audit.service import record_cli_action
from cityos.platform.cli.output import JSON_OPTION, emit_json
from cityos.platform.cli.session import open_runtime
from cityos.platform.ports import SigningKeyInfo
from cityos.platform.timefmt import format_rfc3339

app = typer.Typer(
    help="List and rotate the keys access tokens are signed with.", no_args_is_help=True
)


def _document(key: SigningKeyInfo) -> dict[str, object]:
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "created_at": format_rfc3339(key.created_at),
        "retired_at": None if key.retired_at is None else format_rfc3339(key.retired_at),
        "published_until": None
        if key.published_until is None
        else format_rfc3339(key.published_until),
        "signing": key.retired_at is None,
    }


def _echo(key: SigningKeyInfo) -> None:
    if key.published_until is None:
        state = "signing"
    else:
        state = f"retired, verifies until {format_rfc3339(key.published_until)}"
    created = format_rfc3339(key.created_at)
    typer.echo(f"{key.kid}  {key.algorithm}  created {created}  {state}")


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List the stored signing keys, oldest first."""
    with open_runtime() as runtime:
        keys = runtime.require_auth().signing_keys()
    if as_json:
        emit_json([_document(key) for key in keys])
        return
    if not keys:
        typer.echo("no signing key yet (one is made when the first token is issued)")
    for key in keys:
        _echo(key)


@app.command("rotate")
def rotate(as_json: bool = JSON_OPTION) -> None:
    """Sign new tokens with a new key; older keys keep verifying until their tokens expire."""
    with open_runtime() as runtime:
        key = runtime.require_auth().rotate_signing_key()
        record_cli_action(runtime.catalog, "keys rotate", [key.kid])
    if as_json:
        emit_json(_document(key))
        return
    typer.echo(f"new signing key {key.kid} ({key.algorithm})")
    typer.echo(
        "running API servers sign with it within 2 s; the previous key stays in the JWKS "
        "until every token it signed has expired"
    )
