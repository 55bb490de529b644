"""`cityos audit list`: the append-only audit log (health-data reads, admin actions)."""

from __future__ import annotations

from typing import Annotated

import typer

from cityos.platform.audit.service import MAX_EVENTS_PER_REQUEST, list_events
from cityos.platform.cli.output import JSON_OPTION, emit_json
from cityos.platform.cli.session import open_runtime
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import AuditEvent
from cityos.platform.timefmt import format_rfc3339, parse_rfc3339

app = typer.Typer(
    help="The audit log: who read health data or did admin actions, when, from where.",
    no_args_is_help=True,
)


def _document(event: AuditEvent) -> dict[str, object]:
    return {
        "time": format_rfc3339(event.time),
        "client_id": event.client_id,
        "operation": event.operation,
        "resources": list(event.resources),
        "details": event.details,
        "source_ip": event.source_ip,
    }


@app.command("list")
def list_(
    client: Annotated[str | None, typer.Option("--client", help="only this client id")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="RFC 3339 with offset, e.g. 2026-07-01T09:00:00+09:00"),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, max=MAX_EVENTS_PER_REQUEST, help="at most this many"),
    ] = 100,
    as_json: bool = JSON_OPTION,
) -> None:
    """List audit events, newest first."""
    try:
        start = None if since is None else parse_rfc3339(since, field="--since")
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    with open_runtime() as runtime:
        events = list_events(catalog=runtime.catalog, client_id=client, since=start, first=limit)
    if as_json:
        emit_json([_document(event) for event in events])
        return
    if not events:
        typer.echo("no audit events")
    for event in events:
        kind = event.details.get("kind", "")
        outcome = event.details.get("outcome")
        typer.echo(
            f"{format_rfc3339(event.time)}  {_actor(event)}  {event.operation}"
            f"  [{kind}{'' if outcome is None else ': ' + str(outcome)}]"
            f"  from {event.source_ip or '-'}"
        )
        if event.resources:
            typer.echo(f"    {' '.join(event.resources)}")


def _actor(event: AuditEvent) -> str:
    """Who acted: the client id, the OS user at the command line, else anonymous."""
    if event.client_id is not None:
        return event.client_id
    if event.details.get("via") == "cli":
        return f"cli ({event.details.get('os_user') or 'unknown user'})"
    return "anonymous"
