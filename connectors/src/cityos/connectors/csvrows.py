"""One CSV row -> a facility record, or the reason it was rejected."""

from __future__ import annotations

from typing import Any

from cityos.connectors import values
from cityos.connectors.csvfile import REPLACEMENT, Row
from cityos.connectors.csvlayout import Layout
from cityos.connectors.values import BadValue
from cityos.platform.ports import FacilityRecord, RejectedRecord

_DAY_ORDER = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cell(cells: list[str], layout: Layout, index: int, parser: Any) -> Any:
    """A parsed cell; BadValue messages get the column's name in front."""
    try:
        return parser(cells[index])
    except BadValue as exc:
        raise BadValue(f"{layout.labels[index]}: {exc}") from exc


def _required(cells: list[str], layout: Layout, index: int, what: str) -> str:
    value = values.text(cells[index])
    if value is None:
        raise BadValue(f"{layout.labels[index]} ({what}) is blank")
    return value


def _coordinates(cells: list[str], layout: Layout) -> tuple[float, float]:
    if values.text(cells[layout.lat]) is None and values.text(cells[layout.lon]) is None:
        lat_label, lon_label = layout.labels[layout.lat], layout.labels[layout.lon]
        raise BadValue(f"no coordinates ({lat_label} and {lon_label} are blank)")
    _required(cells, layout, layout.lat, "latitude")
    _required(cells, layout, layout.lon, "longitude")
    lat = _cell(cells, layout, layout.lat, values.number)
    lon = _cell(cells, layout, layout.lon, values.number)
    values.check_in_japan(lat, lon)
    return lat, lon


def _hours(cells: list[str], layout: Layout) -> dict[str, dict[str, str] | None]:
    """Per-weekday opening hours: {"mon": {"open", "close"}}, None = closed, absent = unknown."""
    found: dict[str, dict[str, str | None]] = {}
    for index, day, end in layout.hours:
        if values.text(cells[index]) is not None:
            found.setdefault(day, {})[end] = _cell(cells, layout, index, values.opening_time)
    hours: dict[str, dict[str, str] | None] = {}
    for day in sorted(found, key=_DAY_ORDER.index):
        opens, closes = found[day].get("open"), found[day].get("close")
        if opens is None and closes is None:
            hours[day] = None
        elif opens is None or closes is None:
            raise BadValue(f"{day}: opening {opens or '-'} and closing {closes or '-'} disagree")
        else:
            hours[day] = {"open": opens, "close": closes}
    return hours


def _attributes(cells: list[str], layout: Layout) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    consumed = layout.consumed
    for index, label in enumerate(layout.labels):
        value = values.text(cells[index])
        if index in consumed or value is None:
            continue
        parser, strict = layout.parsers.get(index, (None, False))
        if parser is not None:
            try:
                attributes[label] = parser(value)
                continue
            except BadValue as exc:
                if strict:
                    raise BadValue(f"{label}: {exc}") from exc
        attributes[label] = value
    if layout.hours:
        attributes["opening_hours"] = _hours(cells, layout)
    return attributes


def _fit(row: Row, layout: Layout, encoding: str | None) -> list[str]:
    """The row's cells, checked against the header's width and for undecodable bytes."""
    cells = row.cells
    extra = cells[layout.width :]
    if len(cells) < layout.width or any(cell.strip() for cell in extra):
        raise BadValue(f"row has {len(cells)} cells, the header has {layout.width}")
    if encoding is not None and any(REPLACEMENT in cell for cell in cells):
        raise BadValue(f"row holds bytes that are not valid {encoding}")
    if any("\x00" in cell for cell in cells):
        raise BadValue("row holds a NUL character")
    return cells[: layout.width]


def build(
    row: Row, layout: Layout, *, kind: str, lossy_encoding: str | None = None
) -> FacilityRecord | RejectedRecord | None:
    """The record of one data row; None for a blank row. `lossy_encoding`: replaced bytes."""
    if not any(cell.strip() for cell in row.cells):
        return None
    try:
        cells = _fit(row, layout, lossy_encoding)
        name = _required(cells, layout, layout.name, "name")
        lat, lon = _coordinates(cells, layout)
        address = values.text(cells[layout.address]) if layout.address is not None else None
        if layout.key is not None:
            source_key = values.folded(_required(cells, layout, layout.key, "ID"))
        else:
            source_key = f"{name}|{address or f'{lat:.6f},{lon:.6f}'}"
        kana = values.text(cells[layout.kana]) if layout.kana is not None else None
        hazards = frozenset(
            hazard for index, hazard in layout.hazards if _cell(cells, layout, index, values.flag)
        )
        attributes = _attributes(cells, layout)
    except BadValue as exc:
        return RejectedRecord(line=row.line, reason=str(exc))
    return FacilityRecord(
        source_key=source_key,
        kind=kind,
        name=name,
        lat=lat,
        lon=lon,
        name_kana=values.folded(kana) if kana else None,
        address=address,
        hazards=hazards,
        attributes=attributes,
    )
