"""Which column of a CSV file holds what: header names, aliases, `--columns` mappings."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cityos.connectors import values
from cityos.connectors.kinds import HAZARD_COLUMNS
from cityos.platform.domain.errors import InvalidInput

Parser = Callable[[str], object]

# Header names (any of these spellings) of the columns every facility list shares.
# The source's own row id first; 共通ID (the national evacuation-site id) only when no other.
KEY_COLUMNS = ("ID", "施設ID", "NO", "番号", "共通ID")
NAME_COLUMNS = ("名称", "施設名", "施設名称", "施設・場所名", "name")
KANA_COLUMNS = ("名称_カナ", "フリガナ", "ふりがな", "よみがな", "カナ")
ADDRESS_COLUMNS = ("住所", "所在地", "所在地_連結表記", "address")
LAT_COLUMNS = ("緯度", "latitude", "lat")
LON_COLUMNS = ("経度", "longitude", "lon", "lng")
# Columns kept as attributes but normalised when they parse (`8:30` -> `08:30`).
TIME_COLUMNS = ("開始時間", "終了時間", "利用開始時間", "利用終了時間", "参加申込終了時間")
DATE_COLUMNS = ("開始日", "終了日", "指定日", "参加申込終了日", "開設日", "開設年月日", "設置日")
# `--columns` field names besides the core ones, and the header name they give the column.
RENAMES: Mapping[str, str] = {
    "phone": "電話番号",
    "url": "URL",
    "opened": "開設日",
    "note": "備考",
    "email": "連絡先メールアドレス",
}
_HAZARD_ALIASES = {"がけ崩れ、土石流及び地すべり": "landslide", "大規模な火災": "large_fire"}
_HAZARD_KEYS = {
    values.header_key(label): hazard
    for label, hazard in {**HAZARD_COLUMNS, **_HAZARD_ALIASES}.items()
}
_HAZARD_PREFIX = values.header_key("災害種別_")
_WEEKDAY = re.compile(
    r"(日|月|火|水|木|金|土)曜日?(?:開放|利用|営業|開館)?(開始|終了)(?:時刻|時間)?"
)
DAYS = {"日": "sun", "月": "mon", "火": "tue", "水": "wed", "木": "thu", "金": "fri", "土": "sat"}
HEADER_SEARCH_ROWS = 10


@dataclass(frozen=True, slots=True)
class CsvSpec:
    """One dataset format: what it is called, its facility kind, its own column names."""

    connector: str
    title: str
    kind: str | None  # None: given by the caller (`facilities-csv --kind`)
    name_columns: tuple[str, ...] = NAME_COLUMNS
    kana_columns: tuple[str, ...] = KANA_COLUMNS
    address_columns: tuple[str, ...] = ADDRESS_COLUMNS
    strict_dates: tuple[str, ...] = ()  # dates that must parse, else the row is rejected
    weekly_hours: bool = False  # per-weekday 開始/終了 columns -> `opening_hours`
    needs_hazards: bool = False  # the file must have at least one 災害種別 column


@dataclass(frozen=True, slots=True)
class Layout:
    """Column positions of one file's header, and how each other column is kept."""

    width: int
    labels: tuple[str, ...]  # attribute key of each column
    name: int
    lat: int
    lon: int
    key: int | None
    kana: int | None
    address: int | None
    hazards: tuple[tuple[int, str], ...]  # (column, hazard)
    hours: tuple[tuple[int, str, str], ...]  # (column, day, "open" | "close")
    parsers: Mapping[int, tuple[Parser, bool]]  # (parser, strict) of typed columns

    @property
    def consumed(self) -> frozenset[int]:
        """Columns that became record fields rather than attributes (the key column stays)."""
        used = {self.name, self.lat, self.lon, self.kana, self.address}
        used |= {column for column, _ in self.hazards}
        used |= {column for column, _, _ in self.hours}
        return frozenset(column for column in used if column is not None)


def parse_columns(text: str) -> dict[str, str]:
    """`name=名称,lat=latitude` -> {"name": "名称", "lat": "latitude"}; InvalidInput if bad."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        field, sep, header = part.partition("=")
        if not sep or not field.strip() or not header.strip():
            raise InvalidInput(
                f"--columns wants FIELD=HEADER pairs separated by commas, not {part[:60]!r}",
                field="columns",
            )
        mapping[field.strip()] = header.strip()
    return mapping


def _labels(cells: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for index, cell in enumerate(cells):
        label = values.header_label(cell) or f"column_{index + 1}"
        base, copy = label, 2
        while label in labels:
            label, copy = f"{base} ({copy})", copy + 1
        labels.append(label)
    return labels


def _hazard(key: str) -> str | None:
    return _HAZARD_KEYS.get(key.removeprefix(_HAZARD_PREFIX)) if key else None


def _find(keys: Sequence[str], aliases: Sequence[str], taken: set[int]) -> int | None:
    for alias in aliases:
        wanted = values.header_key(alias)
        for index, key in enumerate(keys):
            if key == wanted and index not in taken:
                return index
    return None


class _Resolver:
    """Resolves one header row against a spec and a `--columns` mapping."""

    def __init__(self, cells: Sequence[str], spec: CsvSpec, columns: Mapping[str, str]) -> None:
        self.spec = spec
        self.labels = _labels(cells)
        self.keys = [values.header_key(label) for label in self.labels]
        self.core: dict[str, int] = {}
        self.problems: list[str] = []
        self.aliases = {
            "key": KEY_COLUMNS,
            "name": spec.name_columns,
            "kana": spec.kana_columns,
            "address": spec.address_columns,
            "lat": LAT_COLUMNS,
            "lon": LON_COLUMNS,
        }
        for field, header in columns.items():
            self._map(field, header)

    def _map(self, field: str, header: str) -> None:
        wanted = values.header_key(header)
        index = next((i for i, key in enumerate(self.keys) if key == wanted), None)
        if index is None:
            self.problems.append(f"--columns {field}={header[:60]}: no column {header[:60]!r}")
            return
        target = RENAMES.get(field.lower(), field)
        core = field.lower() if field.lower() in self.aliases else None
        core = core or next(
            (name for name, aliases in self.aliases.items() if _matches(target, aliases)), None
        )
        if core is not None:
            self.core[core] = index
            return
        label = values.header_label(target)
        if label in self.labels[:index] + self.labels[index + 1 :]:
            self.problems.append(f"--columns {field}={header[:60]}: {label!r} is taken")
            return
        self.labels[index] = label
        self.keys[index] = values.header_key(label)

    def resolve(self) -> Layout | None:
        """The layout, or None when this row lacks a name, latitude or longitude column."""
        taken = set(self.core.values())
        for field, aliases in self.aliases.items():
            if field not in self.core:
                found = _find(self.keys, aliases, taken)
                if found is not None:
                    self.core[field] = found
                    taken.add(found)
        if self.problems or not {"name", "lat", "lon"} <= self.core.keys():
            return None
        return Layout(
            width=len(self.labels),
            labels=tuple(self.labels),
            name=self.core["name"],
            lat=self.core["lat"],
            lon=self.core["lon"],
            key=self.core.get("key"),
            kana=self.core.get("kana"),
            address=self.core.get("address"),
            hazards=self._hazards(taken),
            hours=self._hours(taken),
            parsers=self._parsers(),
        )

    def missing(self) -> list[str]:
        """Why this row is not the header: `--columns` problems, then core columns it lacks."""
        lacking = [field for field in ("name", "lat", "lon") if field not in self.core]
        return self.problems + [f"no {self.aliases[field][0]} column" for field in lacking]

    def _hazards(self, taken: set[int]) -> tuple[tuple[int, str], ...]:
        found = ((i, _hazard(key)) for i, key in enumerate(self.keys) if i not in taken)
        return tuple((i, hazard) for i, hazard in found if hazard is not None)

    def _hours(self, taken: set[int]) -> tuple[tuple[int, str, str], ...]:
        if not self.spec.weekly_hours:
            return ()
        hours: list[tuple[int, str, str]] = []
        for index, key in enumerate(self.keys):
            match = _WEEKDAY.fullmatch(key)
            if match and index not in taken:
                hours.append((index, DAYS[match[1]], "open" if match[2] == "開始" else "close"))
        return tuple(hours)

    def _parsers(self) -> dict[int, tuple[Parser, bool]]:
        strict = {values.header_key(name) for name in self.spec.strict_dates}
        dates = {values.header_key(name) for name in DATE_COLUMNS} | strict
        times = {values.header_key(name) for name in TIME_COLUMNS}
        parsers: dict[int, tuple[Parser, bool]] = {}
        for index, key in enumerate(self.keys):
            if key in dates:
                parsers[index] = (values.calendar_date, key in strict)
            elif key in times:
                parsers[index] = (values.clock_time, False)
        return parsers


def _matches(label: str, aliases: Sequence[str]) -> bool:
    key = values.header_key(label)
    return any(values.header_key(alias) == key for alias in aliases)


def find_layout(
    cells: Sequence[str], spec: CsvSpec, columns: Mapping[str, str]
) -> tuple[Layout | None, list[str]]:
    """The layout if `cells` is the header row, else None and why it is not."""
    resolver = _Resolver(cells, spec, columns)
    layout = resolver.resolve()
    return layout, ([] if layout else resolver.missing())
