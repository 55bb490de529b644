"""The `cityos` command line (exit codes: 0 ok, 1 failure, 2 usage)."""

from __future__ import annotations

import logging
import sys

import typer

from cityos.platform.cli import (
    audit,
    clients,
    connectors,
    devices,
    export,
    keys,
    mosquitto,
    rejected,
)
from cityos.platform.cli.demo import demo
from cityos.platform.cli.run import ingest, serve
from cityos.platform.domain.errors import CityosError

app = typer.Typer(
    name="cityos",
    help="cityos: Omaezaki city's data-linkage platform (urban OS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo)
app.command("serve")(serve)
app.command("ingest")(ingest)
app.add_typer(devices.app, name="devices")
app.add_typer(mosquitto.app, name="mosquitto")
app.add_typer(rejected.app, name="rejected")
app.add_typer(clients.app, name="clients")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(connectors.app, name="connectors")
app.command("export")(export.export)


def main() -> None:
    """Run the CLI; expected failures print one clear line and exit 1."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app(standalone_mode=True)
    except CityosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
