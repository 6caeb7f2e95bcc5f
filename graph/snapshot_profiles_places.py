"""The parts of a ``GraphSnapshot`` that describe who users are and where items are.

Attribute nodes (``graph.user_attributes``) become a sorted id list with their kinds and display
names and a users × attributes CSR matrix (1 per HAS_ATTRIBUTE link); item locations become two
float64 arrays ``item_lat`` / ``item_lon`` in degrees, NaN where unknown. Plain functions over
records and arrays (``graph.snapshot`` calls them), so both stores' snapshots agree; they join
the fingerprint (``graph.snapshot_fingerprint``) only when the graph has any.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from kgrec.graph.records import Attribute, GraphRecords
from kgrec.graph.user_attributes import filled


def attribute_parts(
    records: GraphRecords, users: Mapping[str, int]
) -> tuple[list[str], tuple[str, ...], tuple[str, ...], sp.csr_matrix]:
    """Sorted attribute ids, their kinds and names, and the users × attributes matrix."""
    known = {a.id: filled(a) for a in records.attributes}
    ids = sorted(known.keys() | {x.attribute for x in records.has_attribute})
    index = {a: i for i, a in enumerate(ids)}
    nodes = [known.get(a) or filled(Attribute(a)) for a in ids]
    pairs = sorted({(users[x.user], index[x.attribute]) for x in records.has_attribute})
    rows = np.array([u for u, _ in pairs], dtype=np.int64)
    cols = np.array([a for _, a in pairs], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (rows, cols)), shape=(len(users), len(ids)))
    matrix.sort_indices()
    return ids, tuple(str(a.kind) for a in nodes), tuple(str(a.name) for a in nodes), matrix


def location_parts(records: GraphRecords, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``item_lat``, ``item_lon`` aligned with ``items`` (NaN for an item without a location)."""
    where = {i.id: i.location for i in records.items if i.location is not None}
    lat = np.full(len(items), np.nan, dtype=np.float64)
    lon = np.full(len(items), np.nan, dtype=np.float64)
    for n, key in enumerate(items):
        loc = where.get(key)
        if loc is not None:
            lat[n], lon[n] = loc
    return lat, lon


def defaults(n_users: int, n_attributes: int, n_items: int) -> dict[str, Any]:
    """What a snapshot without these parts holds: no links, no locations."""
    return {
        "user_attributes": sp.csr_matrix((n_users, n_attributes), dtype=np.float32),
        "item_lat": np.full(n_items, np.nan, dtype=np.float64),
        "item_lon": np.full(n_items, np.nan, dtype=np.float64),
    }
