"""The runtime a CLI command works with, and the one mapping of its errors to exit codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from cityos.platform.cli.output import fail
from cityos.platform.config import load_settings
from cityos.platform.domain.errors import CityosError, InvalidInput
from cityos.platform.runtime import Runtime


@contextlib.contextmanager
def open_runtime() -> Iterator[Runtime]:
    """Open the configured runtime; bad values exit 2 (usage), other failures exit 1."""
    runtime = Runtime.open(load_settings())
    try:
        yield runtime
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    except CityosError as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
