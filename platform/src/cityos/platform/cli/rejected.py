"""`cityos rejected list`: the dead-letter records of ingestion, newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from cityos.platform.cli.output import JSON_OPTION, emit_json
from cityos.platform.cli.session import open_runtime
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ingest.retention import purge_old_rejections
from cityos.platform.timefmt import format_rfc3339, parse_rfc3339

app = typer.Typer(help="Messages and readings that ingestion refused.", no_args_is_help=True)


@app.command("list")
def list_(
    device: Annotated[str | None, typer.Option("--device", help="only this device id")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="RFC 3339 with offset, e.g. 2026-07-01T09:00:00+09:00"),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="at most this many")
    ] = 100,
    as_json: bool = JSON_OPTION,
) -> None:
    """List dead-letter records (time, topic, device, reason, excerpt), newest first."""
    try:
        start = None if since is None else parse_rfc3339(since, field="--since")
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    with open_runtime() as runtime:
        records = runtime.catalog.list_rejections(device_id=device, since=start, limit=limit)
    if as_json:
        emit_json(
            [
                {
                    "time": format_rfc3339(r.received_at),
                    "topic": r.topic,
                    "device_id": r.device_id,
                    "quantity": r.quantity,
                    "reason": r.reason,
                    "excerpt": r.excerpt,
                }
                for r in records
            ]
        )
        return
    if not records:
        typer.echo("no rejected messages")
    for r in records:
        where = r.device_id or "-"
        if r.quantity:
            where += f".{r.quantity}"
        typer.echo(f"{format_rfc3339(r.received_at)}  {where}  {r.reason}")
        typer.echo(f"    topic {r.topic}  excerpt {r.excerpt[:200]!r}")


@app.command("purge")
def purge(
    older_than: Annotated[
        int,
        typer.Option("--older-than-days", min=1, help="delete records older than this many days"),
    ],
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete dead-letter records older than N days (`ingest` also does this hourly)."""
    with open_runtime() as runtime:
        deleted = purge_old_rejections(runtime.catalog, days=older_than)
    if as_json:
        emit_json({"deleted": deleted})
        return
    typer.echo(f"deleted {deleted} dead-letter records older than {older_than} days")
