"""A connector that reads facility lists in CSV, one per dataset format (see recommended.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from cityos.connectors import csvfile
from cityos.connectors.csvlayout import HEADER_SEARCH_ROWS, CsvSpec, Layout, find_layout
from cityos.connectors.csvlayout import parse_columns as parse_columns
from cityos.connectors.csvrows import build
from cityos.connectors.kinds import kind_option, parse_kind
from cityos.connectors.sources import read_limited, source_files
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import FacilityRecord, RejectedRecord

# 推奨データセット are published under many terms; nothing is public until a licence is given.
DEFAULT_LICENCE = "not stated (give the publisher's licence with --licence)"
MAX_FILE_BYTES = 50 * 1024 * 1024
FILE_SUFFIXES = (".csv", ".tsv")


def _header(
    rows: Iterator[csvfile.Row | csvfile.BadRow],
    path: Path,
    spec: CsvSpec,
    columns: Mapping[str, str],
) -> tuple[list[RejectedRecord], Layout]:
    """Read up to the header row: the rows that could not be parsed, and the header's layout."""
    rejected: list[RejectedRecord] = []
    first_problems: list[str] | None = None
    seen = 0
    for row in rows:
        if isinstance(row, csvfile.BadRow):
            rejected.append(RejectedRecord(line=row.line, reason=row.reason))
            continue
        if not any(cell.strip() for cell in row.cells):
            continue
        layout, problems = find_layout(row.cells, spec, columns)
        if layout is not None:
            return rejected, layout
        first_problems = problems if first_problems is None else first_problems
        seen += 1
        if seen >= HEADER_SEARCH_ROWS:
            break
    if first_problems is None:
        raise InvalidInput(f"{path.name} holds no CSV rows", field="source")
    raise InvalidInput(
        f"{path.name} is not a {spec.title} file: no header row in its first "
        f"{HEADER_SEARCH_ROWS} rows ({'; '.join(first_problems)})",
        field="source",
    )


def read_file(
    path: Path, spec: CsvSpec, *, kind: str, columns: Mapping[str, str]
) -> Iterator[FacilityRecord | RejectedRecord]:
    """The records and rejected rows of one CSV file (rejections carry the line they start on)."""
    decoded = csvfile.decode(read_limited(path, max_bytes=MAX_FILE_BYTES, what="CSV"))
    rows = csvfile.rows(decoded.text)
    rejected, layout = _header(rows, path, spec, columns)
    if spec.needs_hazards and not layout.hazards:
        raise InvalidInput(
            f"{path.name} is not a {spec.title} file: it has none of the 災害種別 columns",
            field="source",
        )
    yield from rejected
    lossy = decoded.encoding.upper() if decoded.lossy else None
    for row in rows:
        if isinstance(row, csvfile.BadRow):
            yield RejectedRecord(line=row.line, reason=row.reason)
            continue
        record = build(row, layout, kind=kind, lossy_encoding=lossy)
        if record is not None:
            yield record


class CsvConnector:
    """Reads one CSV dataset format; `configure` gives it `--kind` and `--columns`."""

    file_suffixes = FILE_SUFFIXES

    def __init__(
        self,
        spec: CsvSpec,
        *,
        kind: str | None = None,
        columns: Mapping[str, str] | str | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.connector
        self.default_licence = DEFAULT_LICENCE
        chosen = parse_kind(kind) if kind else None
        if spec.kind is not None and chosen not in (None, spec.kind):
            raise InvalidInput(
                f"{spec.connector} reads {kind_option(spec.kind)} facilities only; "
                "use facilities-csv --kind for other kinds",
                field="kind",
            )
        self.kind = chosen or spec.kind
        self.columns = parse_columns(columns) if isinstance(columns, str) else dict(columns or {})

    def configure(
        self, *, kind: str | None = None, columns: Mapping[str, str] | str | None = None
    ) -> CsvConnector:
        """A copy of this connector with a facility kind and/or header mapping."""
        return CsvConnector(
            self.spec,
            kind=kind or self.kind,
            columns=self.columns if columns is None else columns,
        )

    def fetch(self, source: str) -> Iterator[FacilityRecord | RejectedRecord]:
        """Yield a record per data row of each CSV file in `source`, or the row's rejection."""
        if self.kind is None:
            raise InvalidInput(
                f"{self.name} needs --kind (e.g. first-aid-station, shelter)", field="kind"
            )
        for path in source_files(source, connector=self.name, suffixes=FILE_SUFFIXES):
            yield from read_file(path, self.spec, kind=self.kind, columns=self.columns)
