"""Distances between WGS-84 points, defined once: great-circle (haversine) kilometres on a sphere.

Both stores answer ``GraphStore.items_within`` with ``within`` below, so they return the same ids
and the same distances: MemoryStore over every located item, Neo4jStore over the candidates its
point index finds with ``point.distance``. Neo4j measures WGS-84 distances with the haversine
formula on a sphere of ``NEO4J_EARTH_RADIUS_KM`` (its ``HaversineCalculator``), 0.11 % more
than the IUGG mean radius used here, so its metres are this module's times
``NEO4J_EARTH_RADIUS_KM / EARTH_RADIUS_KM`` (``neo4j_metres``; checked against a real server in
``tests/test_store_places.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from kgrec.graph.store_errors import StoreError
from kgrec.graph.values import location_problem

#: The IUGG mean Earth radius (R1), in kilometres.
EARTH_RADIUS_KM = 6371.0088
#: The sphere Neo4j 5's ``point.distance`` uses for WGS-84 2D points, in kilometres.
NEO4J_EARTH_RADIUS_KM = 6378.140


def haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Great-circle kilometres from (lat, lon) to every (lats[i], lons[i]), all in degrees."""
    p1, p2 = math.radians(lat), np.radians(np.asarray(lats, dtype=np.float64))
    dlat = p2 - p1
    dlon = np.radians(np.asarray(lons, dtype=np.float64)) - math.radians(lon)
    a = np.sin(dlat / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))), dtype=np.float64)


def check_query(lat: float, lon: float, radius_km: float) -> None:
    """StoreError unless (lat, lon) is a location and the radius a finite number >= 0."""
    problem = location_problem((lat, lon))
    if problem is not None:
        raise StoreError(f"centre {problem}")
    if type(radius_km) not in (int, float) or not math.isfinite(radius_km) or radius_km < 0:
        raise StoreError(f"radius_km {radius_km!r} is not a finite number of kilometres >= 0")


def within(
    ids: Sequence[str], lats: np.ndarray, lons: np.ndarray, lat: float, lon: float, radius_km: float
) -> list[tuple[str, float]]:
    """(id, km) of the points within ``radius_km`` of (lat, lon), nearest first, ties by id."""
    if not len(ids):
        return []
    km = haversine_km(lat, lon, lats, lons)
    keep = np.flatnonzero(km <= radius_km)
    return sorted(((ids[int(i)], float(km[i])) for i in keep), key=lambda pair: (pair[1], pair[0]))


def neo4j_metres(radius_km: float) -> float:
    """A radius for Neo4j's ``point.distance`` (metres on its sphere) that holds every point within
    ``radius_km`` here, with a little slack for rounding; ``within`` then applies the exact rule."""
    return radius_km * 1000.0 * (NEO4J_EARTH_RADIUS_KM / EARTH_RADIUS_KM) * (1 + 1e-9) + 1e-3
