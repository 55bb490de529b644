"""Printing for the CLI: one JSON document with --json, human text otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="print one JSON document on stdout")


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def fail(message: str) -> typer.Exit:
    """Print an error line to stderr; return the Exit(1) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)
