"""Kernel densities over places: each user's visited places, their friends' places, or one point.

``UserPlaces`` holds, for one snapshot, every user's located places with weights normalised to
sum to 1 (``log`` weighting: log(1 + check-ins), so a place visited 20 times counts more than one
visited once, but not 20 times more) and the same for the places their friends visited
(friendships are made symmetric: check-in data lists a friendship once). ``density`` is a
Gaussian kernel density ``Σ_j w_j · exp(−d(i, j)² / 2h²)`` at every located item within
``cutoff · h`` of a source place, returned sparse (items, values) from KD-tree ball queries,
so nothing items × items is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.models.geo_space import Places, chord_to_km, km_to_chord, located_rows, to_xyz
from kgrec.recommenders.models.sparse_rows import row_normalise

Sparse = tuple[np.ndarray, np.ndarray]  # item indices (sorted, unique) and values
EMPTY: Sparse = (np.zeros(0, dtype=np.int64), np.zeros(0))


@dataclass(frozen=True)
class UserPlaces:
    """Visited places per user, as normalised weights (users × items CSR, located items only)."""

    places: Places
    counts: sp.csr_matrix  #: raw interaction weights (check-ins), all items
    own: sp.csr_matrix  #: normalised weights of each user's located places
    friends: sp.csr_matrix  #: normalised weights of the places each user's friends visited
    audience: np.ndarray  #: users per item

    @classmethod
    def of(cls, snapshot: GraphSnapshot, places: Places, weighting: str) -> UserPlaces:
        x = sp.csr_matrix(snapshot.interactions, dtype=np.float64)
        x.sort_indices()
        w = x.copy()
        w.data = np.log1p(w.data) if weighting == "log" else np.ones_like(w.data)
        w = sp.csr_matrix(w.multiply(places.known[None, :]))
        w.eliminate_zeros()
        own = row_normalise(w)
        f = sp.csr_matrix(snapshot.follows, dtype=np.float64)
        f = sp.csr_matrix(((f + f.T) > 0).astype(np.float64))
        friends = row_normalise(sp.csr_matrix(f @ own))
        audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr).astype(np.float64)
        return cls(places, x, own, friends, audience)

    def row(self, m: sp.csr_matrix, u: int) -> Sparse:
        a, b = m.indptr[u], m.indptr[u + 1]
        return m.indices[a:b].astype(np.int64), m.data[a:b]

    def visits(self, u: int) -> Sparse:
        """User ``u``'s located places and raw check-ins there."""
        items, w = located_rows(self.counts, self.places.known, u)
        return items.astype(np.int64), w


def density(places: Places, sources: np.ndarray, weights: np.ndarray, h_km: float, cutoff: float) -> Sparse:
    """Gaussian kernel density (bandwidth ``h_km``, cut at ``cutoff · h_km``) of weighted source
    points (unit vectors) at every located item it reaches."""
    if len(sources) == 0:
        return EMPTY
    pairs = cKDTree(sources).sparse_distance_matrix(places.tree, km_to_chord(cutoff * h_km), output_type="ndarray")
    if len(pairs) == 0:
        return EMPTY
    k = weights[pairs["i"]] * np.exp(-0.5 * (chord_to_km(pairs["v"]) / h_km) ** 2)
    sums = np.bincount(pairs["j"], weights=k, minlength=len(places.located))
    reached = np.flatnonzero(sums > 0)
    return places.located[reached].astype(np.int64), sums[reached]


def item_density(up: UserPlaces, entry: Sparse, h_km: float, cutoff: float) -> Sparse:
    """``density`` of weighted items (a row of ``own`` or ``friends``)."""
    items, w = entry
    return density(up.places, up.places.xyz[items], w, h_km, cutoff) if len(items) else EMPTY


def point_density(places: Places, lat: float, lon: float, h_km: float, cutoff: float) -> Sparse:
    """``density`` around one point of weight 1 (a user who is there now)."""
    return density(places, to_xyz(np.array([lat]), np.array([lon])), np.ones(1), h_km, cutoff)


def on(items: np.ndarray, part: Sparse) -> np.ndarray:
    """The values of a sparse density at ``items``, 0 where it has none."""
    idx, vals = part
    out = np.zeros(len(items))
    if len(idx) and len(items):
        pos = np.minimum(np.searchsorted(idx, items), len(idx) - 1)
        hit = idx[pos] == items
        out[hit] = vals[pos[hit]]
    return out


def union(*parts: Sparse) -> np.ndarray:
    """The sorted union of the parts' items."""
    idx = [p[0] for p in parts if len(p[0])]
    return np.unique(np.concatenate(idx)) if idx else np.zeros(0, dtype=np.int64)
