"""Deterministic daily patterns of Omaezaki's weather, sea and visitors (time + seed -> value)."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

JST = timezone(timedelta(hours=9), "JST")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_LAT = math.radians(34.60)
_LON = 138.22
_DAY_H = 24.0

# Harmonic constants (amplitude m, speed deg/h, phase deg) close to Omaezaki's published ones.
_TIDE_MEAN_LEVEL = 1.20
_CONSTITUENTS: tuple[tuple[float, float, float], ...] = (
    (0.43, 28.984104, 140.0),  # M2, 12.42 h
    (0.20, 30.000000, 165.0),  # S2, 12.00 h
    (0.22, 15.041069, 185.0),  # K1, 23.93 h
    (0.17, 13.943036, 165.0),  # O1, 25.82 h
)


# ---------------------------------------------------------------- helpers


def _hours(when: datetime) -> float:
    """Hours since 2000-01-01 UTC (the time axis of every model)."""
    if when.tzinfo is None:
        raise ValueError("simulator times must carry a time zone")
    return (when - _EPOCH).total_seconds() / 3600.0


def _local(when: datetime) -> datetime:
    return when.astimezone(JST)


def _local_hour(when: datetime) -> float:
    local = _local(when)
    return local.hour + local.minute / 60.0 + local.second / 3600.0


def _day_of_year(when: datetime) -> float:
    local = _local(when)
    return local.timetuple().tm_yday + _local_hour(when) / _DAY_H


def _unit(seed: int, key: str, index: int) -> float:
    """A stable pseudo-random number in [0, 1) for (seed, key, index)."""
    digest = hashlib.blake2b(f"{seed}:{key}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def noise(seed: int, key: str, when: datetime, *, step_minutes: float = 10.0) -> float:
    """Smooth deterministic noise in [-1, 1]: random knots every `step_minutes`, interpolated."""
    position = _hours(when) * 60.0 / step_minutes
    index = math.floor(position)
    frac = position - index
    low = 2.0 * _unit(seed, key, index) - 1.0
    high = 2.0 * _unit(seed, key, index + 1) - 1.0
    return low + (high - low) * frac


def _phase(seed: int, key: str) -> float:
    return 2.0 * math.pi * _unit(seed, key, 0)


def summer_factor(when: datetime) -> float:
    """1.0 at the start of August, 0.0 at the start of February."""
    return 0.5 + 0.5 * math.cos(2.0 * math.pi * (_day_of_year(when) - 213.0) / 365.25)


def sun_elevation_sine(when: datetime) -> float:
    """Sine of the sun's elevation over Omaezaki (negative at night)."""
    declination = math.radians(23.44) * math.sin(2.0 * math.pi * (284.0 + _day_of_year(when)) / 365)
    solar_hour = _local_hour(when) + (_LON - 135.0) / 15.0
    hour_angle = math.radians(15.0 * (solar_hour - 12.0))
    return math.sin(_LAT) * math.sin(declination) + math.cos(_LAT) * math.cos(
        declination
    ) * math.cos(hour_angle)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


# ---------------------------------------------------------------- sea


def astronomical_tide(when: datetime) -> float:
    """The predicted tide level at Omaezaki port in m (M2 + S2 + K1 + O1 around the mean)."""
    hours = _hours(when)
    return _TIDE_MEAN_LEVEL + sum(
        amplitude * math.cos(math.radians(speed * hours - phase))
        for amplitude, speed, phase in _CONSTITUENTS
    )


def tide_level(when: datetime, seed: int) -> float:
    """Observed tide level in m: the prediction plus a slow surge and gauge noise."""
    surge = 0.06 * math.sin(2.0 * math.pi * _hours(when) / (4.3 * _DAY_H) + _phase(seed, "surge"))
    return astronomical_tide(when) + surge + 0.01 * noise(seed, "tide", when)


@dataclass(frozen=True, slots=True)
class Wind:
    """Wind at the cape: speed in m/s and the direction it blows from in degrees."""

    speed: float
    direction: float


def _components(speed: float, from_deg: float) -> tuple[float, float]:
    rad = math.radians(from_deg)
    return -speed * math.sin(rad), -speed * math.cos(rad)


def _sea_breeze(when: datetime) -> float:
    """Strength of the afternoon sea breeze in m/s (peak around 14:00 JST)."""
    hour = _local_hour(when)
    if not 9.0 <= hour <= 19.0:
        return 0.0
    shape = float(math.sin(math.pi * (hour - 9.0) / 10.0) ** 1.5)
    return shape * (2.0 + 2.0 * summer_factor(when))


def wind(when: datetime, seed: int, *, with_noise: bool = True) -> Wind:
    """Wind at the cape: synoptic wind (strong westerlies in winter) plus the sea breeze."""
    hours = _hours(when)
    summer = summer_factor(when)
    synoptic = (
        3.0
        + 2.5 * (1.0 - summer)
        + 1.5 * math.sin(2.0 * math.pi * hours / (3.3 * _DAY_H) + _phase(seed, "wind-a"))
        + 1.0 * math.sin(2.0 * math.pi * hours / (5.9 * _DAY_H) + _phase(seed, "wind-b"))
    )
    synoptic_from = (
        225.0
        + 60.0 * (1.0 - summer)
        + 40.0 * math.sin(2.0 * math.pi * hours / (4.1 * _DAY_H) + _phase(seed, "wind-dir"))
    )
    u, v = _components(max(synoptic, 0.3), synoptic_from)
    breeze_u, breeze_v = _components(_sea_breeze(when), 190.0)  # from the sea, south
    u, v = u + breeze_u, v + breeze_v
    hour = _local_hour(when)
    if hour >= 22.0 or hour < 6.0:  # weak land breeze from the north at night
        land_u, land_v = _components(1.0, 10.0)
        u, v = u + land_u, v + land_v
    speed = math.hypot(u, v)
    direction = math.degrees(math.atan2(-u, -v)) % 360.0
    if with_noise:
        speed *= 1.0 + 0.12 * noise(seed, "gust", when, step_minutes=2.0)
        direction = (direction + 10.0 * noise(seed, "veer", when, step_minutes=5.0)) % 360.0
    return Wind(speed=_clamp(speed, 0.0, 60.0), direction=direction)


def wave_height(when: datetime, seed: int) -> float:
    """Significant wave height at the cape in m: swell plus a wind sea lagging the wind."""
    past = [wind(when - timedelta(hours=lag), seed, with_noise=False).speed for lag in range(4)]
    mean_wind = sum(past) / len(past)
    swell = 0.55 + 0.35 * math.sin(
        2.0 * math.pi * _hours(when) / (6.7 * _DAY_H) + _phase(seed, "swell")
    )
    height = (swell + 0.012 * mean_wind**2) * (1.0 + 0.05 * noise(seed, "wave", when))
    return _clamp(height, 0.05, 15.0)


# ---------------------------------------------------------------- rain and river

_SHOWER_BLOCK_H = 3.0
# Chance that a shower starts in a 3-hour block, by month (梅雨 and autumn rains are wetter).
_SHOWER_CHANCE = (0.05, 0.06, 0.08, 0.09, 0.10, 0.18, 0.16, 0.08, 0.16, 0.12, 0.07, 0.05)


@lru_cache(maxsize=16384)
def _shower(seed: int, block: int) -> tuple[float, float, float] | None:
    """(start hour, duration h, peak mm/h) of the shower starting in `block`, if any."""
    # Deterministic weather, not security: a seeded PRNG is what is wanted here.
    rng = random.Random(int(_unit(seed, "shower", block) * 2**53))  # noqa: S311
    start = block * _SHOWER_BLOCK_H
    month = (_EPOCH + timedelta(hours=start)).astimezone(JST).month
    if rng.random() >= _SHOWER_CHANCE[month - 1]:
        return None
    begin = start + rng.uniform(0.0, _SHOWER_BLOCK_H)
    duration = rng.uniform(0.5, _SHOWER_BLOCK_H)
    peak = 1.5 + 40.0 * float(rng.random() ** 2.5)
    return begin, duration, peak


def _rain_rate(hours: float, seed: int) -> float:
    """Rain intensity in mm/h at `hours` (a shower never lasts past the next block)."""
    block = math.floor(hours / _SHOWER_BLOCK_H)
    rate = 0.0
    for candidate in (block - 1, block):
        shower = _shower(seed, candidate)
        if shower is None:
            continue
        begin, duration, peak = shower
        if begin <= hours <= begin + duration:
            rate += peak * math.sin(math.pi * (hours - begin) / duration)
    return rate


def rainfall(when: datetime, seed: int) -> float:
    """Rain in the past hour in mm (mostly 0, occasional showers)."""
    hours = _hours(when)
    steps = 12
    total = sum(_rain_rate(hours - (i + 0.5) / steps, seed) for i in range(steps)) / steps
    return _clamp(total, 0.0, 200.0)


_RIVER_LAG_H = 1.5  # the hydrograph peaks this long after the rain
_RIVER_STEP_H = 1.0 / 6.0
_RIVER_MEMORY_H = 12.0


def water_level(when: datetime, seed: int) -> float:
    """Niino river level in m: base flow plus the rain routed through a lagged hydrograph."""
    hours = _hours(when)
    response = 0.0
    steps = int(_RIVER_MEMORY_H / _RIVER_STEP_H)
    for i in range(steps):
        lag = (i + 0.5) * _RIVER_STEP_H
        kernel = lag / _RIVER_LAG_H**2 * math.exp(-lag / _RIVER_LAG_H)
        response += _rain_rate(hours - lag, seed) * kernel * _RIVER_STEP_H
    base = 0.45 + 0.08 * math.cos(2.0 * math.pi * (_day_of_year(when) - 190.0) / 365.25)
    level = base + 0.10 * response + 0.005 * noise(seed, "river", when)
    return _clamp(level, 0.0, 8.0)


# ---------------------------------------------------------------- heat


def wbgt(when: datetime, seed: int, *, site_offset: float = 0.0, site: str = "") -> float:
    """WBGT in Cel: seasonal mean, a daily cycle peaking ~14:00 JST, and the sun's strength."""
    summer = summer_factor(when)
    hours = _hours(when)
    seasonal = 14.0 + 11.0 * math.cos(2.0 * math.pi * (_day_of_year(when) - 215.0) / 365.25)
    weather = 1.2 * math.sin(2.0 * math.pi * hours / (4.3 * _DAY_H) + _phase(seed, "heat"))
    daily = (2.0 + 1.0 * summer) * math.cos(2.0 * math.pi * (_local_hour(when) - 14.0) / _DAY_H)
    sun = 1.5 * max(0.0, sun_elevation_sine(when - timedelta(hours=1)))
    value = seasonal + weather + daily + sun + site_offset + 0.2 * noise(seed, f"wbgt-{site}", when)
    return _clamp(value, -20.0, 45.0)


# ---------------------------------------------------------------- visitors


def is_weekend(when: datetime) -> bool:
    """Saturday or Sunday in Japan."""
    return _local(when).weekday() >= 5


def expected_visitors(when: datetime) -> float:
    """Expected lighthouse visitors per hour: daylight bell, more on weekends and in summer."""
    daylight = sun_elevation_sine(when - timedelta(hours=1))
    if daylight <= 0.0:
        return 0.0
    peak = 160.0 if is_weekend(when) else 60.0
    return peak * (1.0 + 0.5 * summer_factor(when)) * float(daylight**0.8)


def visitors(when: datetime, seed: int) -> float:
    """Visitors counted at the lighthouse in the past hour (a whole number)."""
    expected = expected_visitors(when)
    return float(round(_clamp(expected * (1.0 + 0.1 * noise(seed, "visitors", when)), 0, 5000)))


def parking_occupancy(when: datetime, seed: int) -> float:
    """Occupancy of the cape car park in %, following visitors (plus early surfers)."""
    crowd = expected_visitors(when - timedelta(minutes=30))
    occupancy = 4.0 + 80.0 * (1.0 - math.exp(-crowd / 110.0))
    hour = _local_hour(when)
    if 5.0 <= hour <= 9.0:  # surfers arrive at dawn when there are waves
        occupancy += 10.0 * min(1.0, wave_height(when, seed) / 1.5)
    occupancy += 2.0 * noise(seed, "parking", when)
    return _clamp(occupancy, 0.0, 100.0)
