"""Where `cityos export` writes: a temp file renamed at the end, and the progress bar."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

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


class PartFile:
    """A hidden temp file beside the target; it becomes the target only by `commit()`.

    Bytes are hashed (SHA-256) and counted as they are written.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append `chunk`."""
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        """Flush the bytes to disk and close (the file stays under its temp name)."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._hash.hexdigest()

    def commit(self) -> None:
        """Close and rename onto the target (atomic), with the permissions a new file gets."""
        self.close()
        os.chmod(self.path, 0o666 & ~_umask())
        os.replace(self.path, self.target)

    def discard(self) -> None:
        """Close and delete the temp file."""
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def part_file(target: Path) -> Iterator[PartFile]:
    """A PartFile for `target`, deleted when the block ends without `commit()` (or raises)."""
    part = PartFile(target)
    try:
        yield part
    finally:
        if part.path.exists():
            part.discard()


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
    at the end (remote Parquet and zip), bytes and bytes/s.
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
            *columns, console=console, disable=not console.is_terminal, transient=False
        )
        self.task: TaskID = self.progress.add_task(description, total=total)
        self.count = 0

    def advance(self, amount: int) -> None:
        """Count `amount` more points (or bytes)."""
        if amount:
            self.count += amount
            self.progress.advance(self.task, amount)

    def finish(self) -> None:
        """Fill the bar: the total is what was counted (an aggregate's total is a bound)."""
        self.progress.update(self.task, total=self.count, completed=self.count)

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
