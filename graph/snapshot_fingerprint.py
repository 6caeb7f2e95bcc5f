"""A snapshot's fingerprint: a digest of every array and string that defines the graph it holds.

Equal graphs give equal fingerprints whatever the store or load order (``build_snapshot`` sorts
ids), and a model or bundle records the fingerprint of the snapshot it was fitted on, so loading
it against another graph is refused. Parts added to the graph model later (dislikes and hidden
items, attributes, locations) join the digest only when a graph has them, so graphs without them
keep the fingerprints they always had.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def plain(structured: np.ndarray) -> np.ndarray:
    """A structured array (taggings, facts) as int64 columns in field order."""
    names = structured.dtype.names or ()
    if len(structured) == 0:
        return np.zeros((0, len(names)), dtype=np.int64)
    return np.stack([structured[name].astype(np.int64) for name in names], axis=1)


def snapshot_fingerprint(s: Any) -> str:
    """``u<users>-i<items>-x<interactions>-<16 hex digits>`` of a ``GraphSnapshot``."""
    h = hashlib.sha256()

    def add(obj: Any) -> None:
        if isinstance(obj, np.ndarray):
            h.update(np.ascontiguousarray(obj).tobytes())
        else:
            h.update(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\x00")

    for part in (s.users.ids, s.items.ids, s.tags.ids, s.entities.ids, s.predicates):
        add(list(part))
    for m in (s.interactions, s.item_tags, s.user_tags, s.follows):
        add(m.indptr.astype(np.int64))
        add(m.indices.astype(np.int64))
        add(m.data.astype(np.float32))
    add(s.ratings.astype(np.float32))
    add(s.timestamps.astype(np.int64))
    add(plain(s.taggings))
    add(plain(s.facts))
    add([list(s.item_titles), list(s.tag_names), list(s.tag_kinds), list(s.entity_labels)])
    add([list(s.user_attrs), list(s.item_attrs)])
    if s.dislikes.nnz or s.hidden:
        add(s.dislikes.indptr.astype(np.int64))
        add(s.dislikes.indices.astype(np.int64))
        add(sorted(s.hidden))
    links = s.user_attributes
    if len(s.attributes) or links.nnz:
        add([list(s.attributes.ids), list(s.attribute_kinds), list(s.attribute_names)])
        add(links.indptr.astype(np.int64))
        add(links.indices.astype(np.int64))
    if np.isfinite(s.item_lat).any():
        add(np.asarray(s.item_lat, dtype=np.float64))
        add(np.asarray(s.item_lon, dtype=np.float64))
    c = s.counts
    return "u{users}-i{items}-x{interactions}-".format(**c) + h.hexdigest()[:16]
