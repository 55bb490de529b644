"""What an import run read and changed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ImportRejection:
    """A source row that was not imported: which source, where in it, and why."""

    source: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one import run read and changed (summed over the datasets it touched).

    `skipped` counts what the connector read but does not handle (e.g. JMA message types
    other than warnings), by kind in `skipped_kinds`; skipped items are not rejections.
    """

    datasets: tuple[str, ...] = ()
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    rejected: int = 0
    rejections: tuple[ImportRejection, ...] = field(default_factory=tuple)
    dry_run: bool = False
    skipped: int = 0
    skipped_kinds: tuple[tuple[str, int], ...] = ()
    merged: int = 0  # rows describing a place that another source has too (one facility)

    def __add__(self, other: ImportSummary) -> ImportSummary:
        kinds = Counter(dict(self.skipped_kinds))
        kinds.update(dict(other.skipped_kinds))
        return ImportSummary(
            datasets=self.datasets + other.datasets,
            read=self.read + other.read,
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            withdrawn=self.withdrawn + other.withdrawn,
            rejected=self.rejected + other.rejected,
            rejections=self.rejections + other.rejections,
            dry_run=self.dry_run or other.dry_run,
            skipped=self.skipped + other.skipped,
            skipped_kinds=tuple(sorted(kinds.items())),
            merged=self.merged + other.merged,
        )
