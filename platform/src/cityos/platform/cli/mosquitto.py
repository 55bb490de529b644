"""`cityos mosquitto sync`: the broker's password file and ACL from the device registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

import typer

from cityos.platform.cli.output import JSON_OPTION, emit_json, fail
from cityos.platform.config import MqttSettings, load_settings
from cityos.platform.devices.mosquitto import (
    WorkerAccount,
    check_username,
    plan_sync,
    reload_broker,
    worker_password,
    write_atomically,
)
from cityos.platform.domain.errors import CityosError, InvalidInput
from cityos.platform.runtime import Runtime

app = typer.Typer(help="Configure an external mosquitto broker.", no_args_is_help=True)


def _worker(settings: MqttSettings, username: str) -> WorkerAccount:
    url = urlsplit(settings.url.get_secret_value()) if settings.url else None
    password = worker_password(
        username=username,
        password=settings.worker_password.get_secret_value() if settings.worker_password else None,
        password_file=settings.worker_password_file,
        url_username=unquote(url.username) if url and url.username else None,
        url_password=unquote(url.password) if url and url.password else None,
    )
    return WorkerAccount(username=username, password=password)


@app.command("sync")
def sync(
    password_file: Annotated[
        Path, typer.Option("--password-file", help="mosquitto password_file to write")
    ],
    acl_file: Annotated[Path, typer.Option("--acl-file", help="mosquitto acl_file to write")],
    worker_username: Annotated[
        str | None,
        typer.Option("--worker-username", help="add the ingest workers' account (read rights)"),
    ] = None,
    pid_file: Annotated[
        Path | None, typer.Option("--pid-file", help="mosquitto's pid_file: SIGHUP it to reload")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write the password file and ACL for every active device; optionally reload mosquitto."""
    settings = load_settings()
    try:
        username = None if worker_username is None else check_username(worker_username)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    runtime = Runtime.open(settings)
    try:
        worker = None if username is None else _worker(settings.mqtt, username)
        plan = plan_sync(runtime.catalog.device_credentials(), worker)
        write_atomically(password_file, plan.password_file)
        write_atomically(acl_file, plan.acl_file)
        reloaded = None if pid_file is None else reload_broker(pid_file)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    except (CityosError, OSError) as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
    if as_json:
        emit_json(
            {
                "devices": plan.devices,
                "revoked_left_out": plan.revoked,
                "without_password_left_out": plan.without_password,
                "worker_username": username,
                "password_file": str(password_file.absolute()),
                "acl_file": str(acl_file.absolute()),
                "reloaded_pid": reloaded,
            }
        )
        return
    typer.echo(f"wrote {password_file} and {acl_file}: {len(plan.devices)} device(s)")
    if plan.revoked:
        typer.echo(f"left out (revoked): {', '.join(plan.revoked)}")
    if plan.without_password:
        typer.echo(f"left out (no password): {', '.join(plan.without_password)}")
    if username is not None:
        typer.echo(f"worker account {username}: may read cityos/v1/devices/+/up")
    if reloaded is not None:
        typer.echo(f"sent SIGHUP to mosquitto (pid {reloaded}): it re-reads both files")
    else:
        typer.echo("mosquitto reads them at its next start or SIGHUP (--pid-file sends one)")
