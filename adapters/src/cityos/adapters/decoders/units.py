"""Exact conversions between SenML unit symbols (RFC 8428 §12.1 and RFC 8798 secondary units).

Only conversions that are exact by definition are listed: decimal prefixes, minutes and hours,
watt-hours, and the Celsius offset. Each symbol maps to its coherent SI unit by a rational scale
(and, for `Cel`, the exact offset 273.15 K). Nothing approximate (no °F, no knots, no bar ↔ mmHg)
and nothing between different dimensions. A device's sensor declares its unit; a SenML record in
another unit of the same dimension is converted, anything else is refused with the reason.

| dimension | coherent unit | other symbols (scale to the coherent unit)        |
|-----------|---------------|---------------------------------------------------|
| length    | m             | mm (1/1000), cm (1/100), km (1000)                |
| time      | s             | ms (1/1000), min (60), h (3600)                   |
| temperature | K           | Cel (1, offset +273.15)                           |
| pressure  | Pa            | hPa (100)                                         |
| energy    | J             | Wh (3600), kWh (3600000)                          |
| power     | W             | kW (1000)                                         |
| voltage   | V             | mV (1/1000)                                       |
| current   | A             | mA (1/1000)                                       |
| mass      | kg            | g (1/1000)                                        |
| volume    | m3            | l (1/1000)                                        |
| flow      | m3/s          | l/s (1/1000)                                      |
| speed     | m/s           | km/h (5/18), m/h (1/3600), mm/h (1/3600000)       |
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class _Unit:
    """A unit as `coherent = value * scale + offset` in its dimension."""

    dimension: str
    scale: Fraction
    offset: float = 0.0


_UNITS: dict[str, _Unit] = {
    "m": _Unit("length", Fraction(1)),
    "mm": _Unit("length", Fraction(1, 1000)),
    "cm": _Unit("length", Fraction(1, 100)),
    "km": _Unit("length", Fraction(1000)),
    "s": _Unit("time", Fraction(1)),
    "ms": _Unit("time", Fraction(1, 1000)),
    "min": _Unit("time", Fraction(60)),
    "h": _Unit("time", Fraction(3600)),
    "K": _Unit("temperature", Fraction(1)),
    "Cel": _Unit("temperature", Fraction(1), 273.15),
    "Pa": _Unit("pressure", Fraction(1)),
    "hPa": _Unit("pressure", Fraction(100)),
    "J": _Unit("energy", Fraction(1)),
    "Wh": _Unit("energy", Fraction(3600)),
    "kWh": _Unit("energy", Fraction(3_600_000)),
    "W": _Unit("power", Fraction(1)),
    "kW": _Unit("power", Fraction(1000)),
    "V": _Unit("voltage", Fraction(1)),
    "mV": _Unit("voltage", Fraction(1, 1000)),
    "A": _Unit("current", Fraction(1)),
    "mA": _Unit("current", Fraction(1, 1000)),
    "kg": _Unit("mass", Fraction(1)),
    "g": _Unit("mass", Fraction(1, 1000)),
    "m3": _Unit("volume", Fraction(1)),
    "l": _Unit("volume", Fraction(1, 1000)),
    "m3/s": _Unit("flow", Fraction(1)),
    "l/s": _Unit("flow", Fraction(1, 1000)),
    "m/s": _Unit("speed", Fraction(1)),
    "km/h": _Unit("speed", Fraction(5, 18)),
    "m/h": _Unit("speed", Fraction(1, 3600)),
    "mm/h": _Unit("speed", Fraction(1, 3_600_000)),
}

CONVERTIBLE_UNITS = frozenset(_UNITS)


@dataclass(frozen=True, slots=True)
class Conversion:
    """`value * numerator / denominator + offset`, with integer factors so each step is exact."""

    numerator: int
    denominator: int
    offset: float

    def apply(self, value: float) -> float:
        """Convert one value (multiplying and dividing by integers keeps float error minimal)."""
        if self.numerator != 1:
            value = value * self.numerator
        if self.denominator != 1:
            value = value / self.denominator
        return value + self.offset if self.offset else value


def _build(source: str, target: str) -> Conversion | None:
    """The conversion from `source` to `target`, or None when there is no exact one."""
    src, dst = _UNITS.get(source), _UNITS.get(target)
    if src is None or dst is None or src.dimension != dst.dimension:
        return None
    ratio = src.scale / dst.scale
    # coherent = v*s_src + o_src = w*s_dst + o_dst  =>  w = v*ratio + (o_src - o_dst)/s_dst
    offset = (src.offset - dst.offset) / float(dst.scale) if src.offset != dst.offset else 0.0
    return Conversion(ratio.numerator, ratio.denominator, round(offset, 10))


_CONVERSIONS: dict[tuple[str, str], Conversion] = {
    (a, b): conv for a in _UNITS for b in _UNITS if (conv := _build(a, b)) is not None
}


def conversion(source: str, target: str) -> Conversion | None:
    """The exact conversion from unit `source` to unit `target` (identity if equal), or None."""
    if source == target:
        return Conversion(1, 1, 0.0)
    return _CONVERSIONS.get((source, target))
