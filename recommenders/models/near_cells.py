"""NEAR steps for graph walks: place → grid cell → place.

A walk ``user → place → cell → place`` reaches the places next to the user's places. Cells are
squares of side ``cell_km`` on two grids offset by half a cell, so two places less than half a
cell apart always share a cell (and places more than a cell's diagonal apart never do). The side
is a quantile of the dataset's learned unit (``GeoScale``), never a fixed distance. Unknown
places belong to no cell.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.models.geo_space import KM_PER_DEGREE, GeoScale, Places
from kgrec.recommenders.models.sparse_rows import interaction_weights, snapshot_view


def cell_memberships(lat: np.ndarray, lon: np.ndarray, cell_km: float) -> sp.csr_matrix:
    """Items × cells, 1 where the item lies in the cell (two offset grids)."""
    n = len(lat)
    known = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
    if len(known) == 0:
        return sp.csr_matrix((n, 0))
    y = lat[known] * KM_PER_DEGREE / cell_km
    x = lon[known] * KM_PER_DEGREE * np.cos(np.radians(lat[known])) / cell_km
    keys = np.concatenate([np.stack([np.full(len(known), g), np.floor(y + off), np.floor(x + off)], axis=1)
                           for g, off in enumerate((0.0, 0.5))]).astype(np.int64)
    _, cell = np.unique(keys, axis=0, return_inverse=True)
    cell = cell.ravel()
    m = sp.csr_matrix((np.ones(len(cell)), (np.concatenate([known, known]), cell)), shape=(n, int(cell.max()) + 1))
    m.sort_indices()
    return m


def learned_scale(snapshot: GraphSnapshot, places: Places, seed: int) -> GeoScale:
    """The snapshot's distance unit, learned once per snapshot (graph_walk and geo share it)."""
    return snapshot_view(snapshot, ("geo_scale", str(seed)),
                         lambda: GeoScale.learn(interaction_weights(snapshot, "raw"), places, seed))


def snapshot_cells(snapshot: GraphSnapshot, places: Places, quantile: float, seed: int) -> sp.csr_matrix:
    """The items × cells memberships of ``snapshot`` with cells of the ``quantile`` of its unit."""
    def build() -> sp.csr_matrix:
        cell_km = learned_scale(snapshot, places, seed).km(quantile)
        return cell_memberships(places.lat, places.lon, cell_km)

    return snapshot_view(snapshot, ("near_cells", repr(quantile), str(seed)), build)
