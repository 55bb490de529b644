"""Distances on the Earth's surface (WGS 84 positions, mean-radius sphere)."""

from __future__ import annotations

import math

from cityos.platform.domain.model import GeoPoint

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


def great_circle_m(a: GeoPoint, b: GeoPoint) -> float:
    """Haversine distance in metres between two WGS 84 points on the mean-radius sphere."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
