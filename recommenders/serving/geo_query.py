"""The read path's geographic parameters, parsed and checked once for the API and the CLI.

- ``near=LAT,LON`` with ``radius_km=R``: only items within R km of that point (great-circle
  distance, ``graph.geo``: the same rule and the same numbers as the stores' ``items_within``, so
  the filter keeps exactly the items a store would list); items without coordinates never pass.
- ``at=LAT,LON``: the user is there now; models that measure distance (``ScoresFromPlace``: the
  location model, the hybrid's geographic part) measure it from that point instead of from the
  user's usual places.

A bad value is a ``GeoParameterError`` naming the parameter (the API answers 400 with it as the
field, the CLI a usage error naming the option).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from threading import Lock

import numpy as np

from kgrec.graph.geo import EARTH_RADIUS_KM, haversine_km
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.graph.values import location_problem
from kgrec.recommenders.models.sparse_rows import snapshot_view

#: The largest radius that means anything on the Earth (half its circumference), in km.
MAX_RADIUS_KM = 20_040.0
#: Masks of recent (point, radius) filters kept per server.
CACHED_MASKS = 256


class GeoParameterError(ValueError):
    """A geographic parameter that is not allowed; ``parameter`` names it (``near``, ``radius_km``, ``at``)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def parse_point(text: str, parameter: str) -> tuple[float, float]:
    """``"LAT,LON"`` in WGS-84 degrees (latitude -90..90, longitude -180..180)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise GeoParameterError(parameter, f"{text!r} is not LAT,LON (two numbers, comma-separated)")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise GeoParameterError(parameter, f"{text!r} is not LAT,LON (two numbers, comma-separated)") from None
    return check_point((lat, lon), parameter)


def check_point(point: tuple[float, float], parameter: str) -> tuple[float, float]:
    problem = location_problem(tuple(point))
    if problem is not None:
        raise GeoParameterError(parameter, problem)
    return float(point[0]), float(point[1])


def parse_radius(text: str | float, parameter: str = "radius_km") -> float:
    """A radius in km: a finite number above 0 and at most ``MAX_RADIUS_KM``."""
    try:
        r = float(text)
    except (TypeError, ValueError):
        raise GeoParameterError(parameter, f"{text!r} is not a number of kilometres") from None
    if not math.isfinite(r) or r <= 0 or r > MAX_RADIUS_KM:
        raise GeoParameterError(parameter, f"{text!r} must be a number of kilometres above 0 and at most "
                                           f"{MAX_RADIUS_KM:g}")
    return r


def check_near(near: tuple[float, float] | None, radius_km: float | None) -> None:
    """``near`` and ``radius_km`` come together, each valid."""
    if near is None and radius_km is None:
        return
    if near is None:
        raise GeoParameterError("near", "radius_km needs near=LAT,LON (the centre of the circle)")
    if radius_km is None:
        raise GeoParameterError("radius_km", "near=LAT,LON needs radius_km (the circle's radius in km)")
    check_point(near, "near")
    parse_radius(radius_km)


def check_geo(near: tuple[float, float] | None, radius_km: float | None, at: tuple[float, float] | None) -> None:
    """A query's geographic parameters, each valid (``near`` and ``radius_km`` together)."""
    check_near(near, radius_km)
    if at is not None:
        check_point(at, "at")


def near_mask(snapshot: GraphSnapshot, near: tuple[float, float], radius_km: float | None) -> np.ndarray:
    """The items of ``snapshot`` within ``radius_km`` of ``near`` (a read-only boolean mask)."""
    if radius_km is None:
        raise GeoParameterError("radius_km", "near=LAT,LON needs radius_km (the circle's radius in km)")
    return snapshot_view(snapshot, ("near_filter",), lambda: NearFilter(snapshot)).mask(near, radius_km)


class NearFilter:
    """Which items of a snapshot lie within a radius of a point (recent answers cached)."""

    def __init__(self, snapshot: GraphSnapshot) -> None:
        lat = snapshot.item_lat if snapshot.item_lat is not None else np.full(len(snapshot.items), np.nan)
        lon = snapshot.item_lon if snapshot.item_lon is not None else np.full(len(snapshot.items), np.nan)
        known = np.isfinite(lat) & np.isfinite(lon)
        self._n = len(snapshot.items)
        self._located = np.flatnonzero(known)
        self._lat, self._lon = np.asarray(lat)[known], np.asarray(lon)[known]
        #: The located items by latitude: a circle lies within a latitude band (a great-circle
        #: distance is at least the Earth's radius times the latitude difference), so only the
        #: band's items need a haversine.
        self._by_lat = np.argsort(self._lat, kind="stable")
        self._lat_sorted = self._lat[self._by_lat]
        self._cache: OrderedDict[tuple[float, float, float], np.ndarray] = OrderedDict()
        self._lock = Lock()

    def mask(self, near: tuple[float, float], radius_km: float) -> np.ndarray:
        """A boolean mask over the snapshot's items: True within ``radius_km`` of ``near`` (read-only)."""
        key = (near[0], near[1], radius_km)
        with self._lock:
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
                return got
        out = np.zeros(self._n, dtype=bool)
        if len(self._located):
            band = math.degrees(radius_km / EARTH_RADIUS_KM) + 1e-9
            lo = int(np.searchsorted(self._lat_sorted, near[0] - band, side="left"))
            hi = int(np.searchsorted(self._lat_sorted, near[0] + band, side="right"))
            idx = self._by_lat[lo:hi]
            within = haversine_km(near[0], near[1], self._lat[idx], self._lon[idx]) <= radius_km
            out[self._located[idx[within]]] = True
        out.setflags(write=False)
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > CACHED_MASKS:
                self._cache.popitem(last=False)
        return out
