"""Distances on the sphere, the items' coordinates and the dataset's own unit of distance.

Shared by the location model (``recommenders.models.geo``), graph_walk's NEAR paths, the hybrid's
geographic features and the read path's ``near=`` filter.

- **Distances** are great-circle distances by the haversine formula on the sphere of
  ``graph.geo`` (the one definition the stores' ``items_within`` use; Neo4j's ``point.distance``,
  which reasons' Cypher returns, is 0.11 % longer). KD-trees index points as 3-D unit vectors: a
  great-circle radius is a chord length (``km_to_chord``), so "within r km" is one ball query.
- **Coordinates** come from the snapshot (``GraphSnapshot.item_lat`` / ``item_lon``, NaN when
  unknown): ``Places.of(snapshot)``; None when no item is located, which is when a geographic
  model has nothing to learn (``has_coordinates``).
- **The unit is learned per dataset** (``GeoScale.learn``): the distribution of the distance from
  each place a user visited to the nearest *other* place the same user visited. Under a per-user
  random holdout it matches the distance from a held-out place to the nearest kept one (Gowalla:
  median 0.16 km both ways, 90th percentile 3.3 vs 3.4 km). Bandwidths, radii, grid cells and
  feature units are quantiles of it, never kilometres, so one dense city and eight spread-out
  ones each get their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from kgrec.graph.geo import EARTH_RADIUS_KM
from kgrec.graph.snapshot import GraphSnapshot

KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180.0
#: Quantiles of the within-user nearest-neighbour distance kept in a ``GeoScale``.
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
#: At most this many of a user's places enter the scale (a seeded sample of heavier users).
MAX_PLACES_PER_USER = 200
#: Floor of every learned distance (km): points closer than this count as one place.
MIN_KM = 0.005


def haversine_km(lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: np.ndarray | float,
                 lon2: np.ndarray | float) -> np.ndarray:
    """Great-circle distance (km) between points, broadcasting; NaN where a point is unknown."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit vectors (n × 3); rows of unknown points are NaN."""
    p = np.radians(np.asarray(lat, dtype=np.float64))
    q = np.radians(np.asarray(lon, dtype=np.float64))
    return np.column_stack([np.cos(p) * np.cos(q), np.cos(p) * np.sin(q), np.sin(p)])


def km_to_chord(km: float) -> float:
    """Chord length between unit vectors ``km`` apart on the sphere."""
    return float(2.0 * np.sin(min(km / EARTH_RADIUS_KM, np.pi) / 2.0))


def chord_to_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle distance (km) of chord lengths between unit vectors."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0))


def pairwise_km(xyz_a: np.ndarray, xyz_b: np.ndarray) -> np.ndarray:
    """All distances (|a| × |b|, km) between two sets of unit vectors, from chords built one
    coordinate at a time (exact to well under a millimetre at any range, unlike a dot product)."""
    squared = np.zeros((len(xyz_a), len(xyz_b)))
    for k in range(3):
        d = np.subtract.outer(xyz_a[:, k], xyz_b[:, k])
        d *= d
        squared += d
    return chord_to_km(np.sqrt(squared, out=squared))


def kernel_at(points: np.ndarray, sources: np.ndarray, weights: np.ndarray, h_km: float,
              cutoff: float) -> np.ndarray:
    """At each of ``points`` (unit vectors), ``Σ weights · exp(−d² / 2h²)`` over the ``sources``
    within ``cutoff · h_km`` (one tree-against-tree query: no |points| × |sources| matrix)."""
    out = np.zeros(len(points))
    if len(points) == 0 or len(sources) == 0:
        return out
    pairs = cKDTree(points).sparse_distance_matrix(cKDTree(sources), km_to_chord(cutoff * h_km),
                                                   output_type="ndarray")
    k = weights[pairs["j"]] * np.exp(-0.5 * (chord_to_km(pairs["v"]) / h_km) ** 2)
    return np.bincount(pairs["i"], weights=k, minlength=len(points)).astype(np.float64)


def item_coordinates(snapshot: GraphSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """The snapshot's item latitudes and longitudes (float64, NaN when unknown)."""
    n = len(snapshot.items)
    lat = getattr(snapshot, "item_lat", None)
    lon = getattr(snapshot, "item_lon", None)
    if lat is None or lon is None or len(lat) != n:
        nan = np.full(n, np.nan)
        return nan, nan.copy()
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


def has_coordinates(snapshot: GraphSnapshot) -> bool:
    """Whether some item someone interacted with has a location: what a geographic model needs."""
    lat, lon = item_coordinates(snapshot)
    known = np.isfinite(lat) & np.isfinite(lon)
    return bool(known.any() and known[np.unique(snapshot.interactions.indices)].any())


@dataclass(frozen=True)
class Places:
    """The located items of one snapshot: coordinates, unit vectors and a KD-tree over them."""

    lat: np.ndarray
    lon: np.ndarray
    known: np.ndarray  #: item has a location
    xyz: np.ndarray  #: unit vectors (NaN rows for unknown items)
    located: np.ndarray  #: indices of the located items, the tree's points in order
    tree: cKDTree  #: over ``xyz[located]``

    @classmethod
    def of(cls, snapshot: GraphSnapshot) -> Places | None:
        lat, lon = item_coordinates(snapshot)
        return cls.from_arrays(lat, lon)

    @classmethod
    def from_arrays(cls, lat: np.ndarray, lon: np.ndarray) -> Places | None:
        known = np.isfinite(lat) & np.isfinite(lon)
        if not known.any():
            return None
        xyz = to_xyz(np.where(known, lat, 0.0), np.where(known, lon, 0.0))
        xyz[~known] = np.nan
        located = np.flatnonzero(known)
        return cls(lat, lon, known, xyz, located, cKDTree(xyz[located]))

    def within(self, lat: float, lon: float, radius_km: float) -> np.ndarray:
        """Indices of the items within ``radius_km`` of the point, by ``haversine_km`` (the ball
        query is widened a little and the haversine distance decides)."""
        centre = to_xyz(np.array([lat]), np.array([lon]))[0]
        hits = np.asarray(self.tree.query_ball_point(centre, km_to_chord(radius_km * 1.001 + 1e-6)), dtype=np.int64)
        items = np.sort(self.located[hits])
        d = haversine_km(lat, lon, self.lat[items], self.lon[items])
        return items[d <= radius_km]

    def ball(self, points: np.ndarray, radius_km: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For unit vectors ``points``: (source row, item index, km) of every located item within
        ``radius_km`` of each point (one compiled tree-against-tree query)."""
        pairs = cKDTree(points).sparse_distance_matrix(self.tree, km_to_chord(radius_km), output_type="ndarray")
        return (pairs["i"].astype(np.int64), self.located[pairs["j"]].astype(np.int64),
                chord_to_km(pairs["v"]))


def located_rows(x: sp.csr_matrix, known: np.ndarray, u: int) -> tuple[np.ndarray, np.ndarray]:
    """User ``u``'s located items and their weights (CSR order)."""
    a, b = x.indptr[u], x.indptr[u + 1]
    items, w = x.indices[a:b], x.data[a:b]
    ok = known[items]
    return items[ok], w[ok]


@dataclass(frozen=True)
class GeoScale:
    """The dataset's distance unit: quantiles (km) of the within-user nearest-neighbour distance,
    learned from ``users`` users with two or more located places."""

    quantiles: tuple[float, ...]
    users: int

    def km(self, q: float) -> float:
        """The ``q`` quantile (one of ``QUANTILES``) in km."""
        return self.quantiles[QUANTILES.index(q)]

    @property
    def unit(self) -> float:
        """The median, the unit features are measured in."""
        return self.km(0.5)

    def as_array(self) -> np.ndarray:
        return np.asarray([*self.quantiles, float(self.users)])

    @classmethod
    def from_array(cls, a: np.ndarray) -> GeoScale:
        if len(a) != len(QUANTILES) + 1 or not np.all(np.isfinite(a)) or np.any(a[:-1] <= 0):
            raise ValueError("a saved distance scale must hold one positive value per quantile and a user count")
        return cls(tuple(float(v) for v in a[:-1]), int(a[-1]))

    @classmethod
    def learn(cls, x: sp.csr_matrix, places: Places, seed: int = 42) -> GeoScale:
        """From the users' histories ``x`` (users × items); 1 km everywhere when no user has two
        located places (nothing to learn from, and nothing will be scored by distance)."""
        rng = np.random.default_rng(seed)
        nn: list[np.ndarray] = []
        for u in range(x.shape[0]):
            items, _ = located_rows(x, places.known, u)
            if len(items) < 2:
                continue
            if len(items) > MAX_PLACES_PER_USER:
                items = rng.choice(items, MAX_PLACES_PER_USER, replace=False)
            d = pairwise_km(places.xyz[items], places.xyz[items])
            np.fill_diagonal(d, np.inf)
            nn.append(d.min(axis=1))
        if not nn:
            return cls(tuple(1.0 for _ in QUANTILES), 0)
        every = np.concatenate(nn)
        return cls(tuple(float(max(np.quantile(every, q), MIN_KM)) for q in QUANTILES), len(nn))
