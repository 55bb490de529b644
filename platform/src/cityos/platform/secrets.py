"""Secrets given directly or as a file (Docker/Kubernetes secrets): first line of the file."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from cityos.platform.domain.errors import ConfigError


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a secret file; ConfigError naming `what` if unreadable or empty."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if not lines or not lines[0]:
        raise ConfigError(f"{what} file {path} is empty")
    return lines[0]


def secret_value(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """The configured secret: the value itself, else the file's first line, else None."""
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if file is not None:
        return read_secret_file(file, what)
    return None
