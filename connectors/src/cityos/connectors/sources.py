"""Local source files of a connector run: a file, or the matching files of a directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cityos.platform.domain.errors import InvalidInput


def source_files(source: str, *, connector: str, suffixes: Sequence[str]) -> list[Path]:
    """The files a source names: the file itself, or a directory's matching files, sorted."""
    if "://" in source and not source.startswith("file://"):
        raise InvalidInput(
            f"{connector} reads local files; download {source[:200]} first and pass its path",
            field="source",
        )
    path = Path(source.removeprefix("file://"))
    if path.is_dir():
        wanted = tuple(suffix.lower() for suffix in suffixes)
        return sorted(
            child
            for child in path.iterdir()
            if child.is_file()
            and not child.name.startswith(".")
            and child.name.lower().endswith(wanted)
        )
    if not path.is_file():
        raise InvalidInput(f"no such file or directory: {source[:200]}", field="source")
    return [path]


def read_limited(path: Path, *, max_bytes: int, what: str) -> bytes:
    """A file's bytes; InvalidInput if it cannot be read or is larger than `max_bytes`."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidInput(
                f"{path} is {size} bytes; {what} files over {max_bytes} bytes are refused",
                field="source",
            )
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="source") from exc
