"""Where `cityos export` writes (`-o`), and the progress bar.

A regular file (or a new name) is written to a hidden temp file beside it and renamed onto it at
the end; symlinks are followed first, so the link stays and its final target is replaced. A FIFO,
a character or block device, a socket or stdout (`-o -`) is written directly instead: there is
nothing to rename, so an interrupted export leaves what was already written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

STDOUT = "-"
"""`-o -`: write the export to stdout."""


class OutputError(Exception):
    """The target could not be opened or written (disk full, a closed pipe, permissions)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What `-o` names: a file replaced at the end, or something written directly."""

    given: str
    """As typed (shown in messages and the summary)."""
    path: Path
    """The file to replace (symlinks resolved), or what to open directly."""
    direct: bool
    """Written in place: a FIFO, a device, a socket or stdout (no temp file, no rename)."""

    @property
    def stdout(self) -> bool:
        """Whether the export goes to stdout (`-o -`)."""
        return self.given == STDOUT

    @property
    def name(self) -> str:
        """A short name for the progress bar."""
        return "stdout" if self.stdout else self.path.name

    @property
    def shown(self) -> str:
        """How messages name it: as typed, or "stdout"."""
        return "stdout" if self.stdout else self.given

    @property
    def recorded(self) -> str:
        """What the audit log keeps: the absolute path written (or "-" for stdout)."""
        return STDOUT if self.stdout else os.path.abspath(self.path)


def _usage(message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint="-o")


def resolve_target(given: str) -> Target:
    """Check `-o`: a directory or a missing directory is a usage error (exit 2)."""
    if given == STDOUT:
        return Target(given, Path(STDOUT), direct=True)
    path = Path(given).expanduser()
    try:
        mode: int | None = path.stat().st_mode  # follows symlinks, and /dev/stdout's magic link
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _usage(f"cannot use {given}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise _usage(f"{given} is a directory; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        return Target(given, path, direct=True)
    final = path.resolve()  # the link stays; the file it finally names is replaced
    if not final.parent.is_dir():
        raise _usage(f"directory {final.parent} does not exist")
    return Target(given, final, direct=False)


class _Output:
    """Bytes written to a target, hashed (SHA-256) and counted as they are written."""

    def __init__(self, target: Target, file: BinaryIO) -> None:
        self.target = target
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0
        self.committed = False

    def write(self, chunk: bytes) -> None:
        """Append `chunk`."""
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise self._error(exc) from None
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._hash.hexdigest()

    def _error(self, exc: OSError) -> OutputError:
        if isinstance(exc, BrokenPipeError):
            return OutputError(f"{self.target.shown} was closed by its reader")
        return OutputError(f"cannot write {self.target.shown}: {exc.strerror or exc}")


class PartFile(_Output):
    """A hidden temp file beside the target file; it becomes the target only by `commit()`."""

    def __init__(self, target: Target) -> None:
        final = target.path
        try:
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        except OSError as exc:
            raise OutputError(f"cannot write in {final.parent}: {exc.strerror or exc}") from None
        super().__init__(target, os.fdopen(fd, "wb"))
        self.path: Path | None = Path(name)
        """The temp file, readable once closed (remote mode reads the row count from it)."""

    def close(self) -> None:
        """Flush the bytes to disk and close (the file stays under its temp name)."""
        if not self._file.closed:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                raise self._error(exc) from None

    def commit(self) -> None:
        """Close and rename onto the target (atomic), with the permissions a new file gets."""
        self.close()
        assert self.path is not None
        os.chmod(self.path, 0o666 & ~_umask())
        os.replace(self.path, self.target.path)
        self.path = None
        self.committed = True

    def discard(self) -> None:
        """Close and delete the temp file (nothing if committed)."""
        with contextlib.suppress(OSError):
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class DirectFile(_Output):
    """The target itself, opened for writing: a FIFO, a device, a socket or stdout."""

    path: Path | None = None
    """Never read back (a FIFO's bytes are gone once read)."""

    def __init__(self, target: Target) -> None:
        if target.stdout:
            sys.stdout.flush()
            file = sys.stdout.buffer
        else:
            try:  # no O_CREAT, no O_TRUNC: it exists and is not a regular file
                fd = os.open(target.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as exc:
                raise OutputError(f"cannot open {target.given}: {exc.strerror or exc}") from None
            file = os.fdopen(fd, "wb")
        super().__init__(target, file)

    def close(self) -> None:
        """Flush (and close, unless it is stdout)."""
        if self._file.closed:
            return
        try:
            self._file.flush()
            if not self.target.stdout:
                self._file.close()
        except OSError as exc:
            raise self._error(exc) from None

    def commit(self) -> None:
        """Flush and close: the bytes are already in place."""
        self.close()
        self.committed = True

    def discard(self) -> None:
        """Close; what was written stays written (a pipe or device cannot take it back)."""
        try:
            self.close()
        except OutputError:
            if self.target.stdout:
                _silence_stdout()


def _silence_stdout() -> None:
    """After a failed write to stdout (a closed pipe), send the rest to /dev/null.

    Otherwise the interpreter's last flush of stdout fails again at exit.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_output(target: Target) -> Iterator[PartFile | DirectFile]:
    """The output for `target`; undone (temp file deleted) when the block ends without commit."""
    output: PartFile | DirectFile = DirectFile(target) if target.direct else PartFile(target)
    try:
        yield output
    finally:
        if not output.committed:
            output.discard()


class _CountColumn(ProgressColumn):
    """'1,234 / 5,000 points' (or '1,234 points' while the total is unknown)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The count of `task`."""
        done = f"{int(task.completed):,}"
        if task.total is None:
            return Text(f"{done} {self.unit}", style="progress.download")
        return Text(f"{done} / {int(task.total):,} {self.unit}", style="progress.download")


class _RateColumn(ProgressColumn):
    """'12,345 points/s'."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The rate of `task`."""
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


class Meter:
    """The progress bar on stderr (hidden when stderr is not a terminal).

    Counts points (with an expected total: a bar and an ETA) or, when points are only known
    at the end (remote Parquet and zip), bytes and bytes/s; the description then carries the
    server's expected points while the bytes arrive and the exact count at the end.
    """

    def __init__(self, description: str, *, points: bool, total: int | None) -> None:
        console = Console(stderr=True)
        columns: tuple[ProgressColumn, ...]
        if points:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                _CountColumn("points"),
                _RateColumn("points"),
                TimeRemainingColumn(),
            )
        else:
            columns = (
                TextColumn("{task.description}"),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
            )
        self.progress = Progress(
            *columns,
            console=console,
            disable=not console.is_terminal,
            transient=False,
            redirect_stdout=False,  # stdout may be the export itself (-o -)
        )
        self.task: TaskID = self.progress.add_task(description, total=total)
        self.count = 0

    def advance(self, amount: int) -> None:
        """Count `amount` more points (or bytes)."""
        if amount:
            self.count += amount
            self.progress.advance(self.task, amount)

    def finish(self, description: str | None = None) -> None:
        """Fill the bar: the total is what was counted (an aggregate's total is a bound)."""
        self.progress.update(self.task, total=self.count, completed=self.count)
        if description is not None:
            self.progress.update(self.task, description=description)

    def __enter__(self) -> Meter:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()
