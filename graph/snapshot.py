"""GraphSnapshot: the immutable, array-based view that recommenders and trainers read.

Both stores build it through ``build_snapshot`` from the same records, with ids sorted,
so the same graph yields the same arrays and the same fingerprint whichever store held it.
It saves to ``snapshot.json`` (strings) and ``arrays.npz`` (uncompressed, members mapped in place,
``graph.array_files``), and loads them mapped read-only: no pickle, no copy, shared by every
process that maps the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from kgrec.graph.array_files import index_dtype, map_arrays, save_arrays
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.snapshot_fingerprint import snapshot_fingerprint as _fingerprint
from kgrec.graph.snapshot_profiles_places import attribute_parts, defaults, location_parts

#: 2: arrays in an uncompressed, mapped ``arrays.npz`` (1: one compressed ``snapshot.npz``).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class IdIndex:
    """A sorted tuple of string ids and its inverse map."""

    ids: tuple[str, ...]
    index: dict[str, int] = field(repr=False, compare=False)

    @classmethod
    def of(cls, ids: set[str] | list[str]) -> IdIndex:
        ordered = tuple(sorted(set(ids)))
        return cls(ordered, {x: i for i, x in enumerate(ordered)})

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def get(self, key: str) -> int | None:
        return self.index.get(key)


@dataclass(frozen=True)
class GraphSnapshot:
    """Users × items × tags × entities as CSR matrices plus id maps.

    ``interactions`` holds weights; ``ratings`` and ``timestamps`` are aligned with
    ``interactions.data`` (NaN / -1 where absent). ``taggings`` keeps every (user, item,
    tag, ts) so that evaluation can drop side data of held-out pairs.
    """

    users: IdIndex
    items: IdIndex
    tags: IdIndex
    entities: IdIndex
    predicates: tuple[str, ...]
    interactions: sp.csr_matrix
    ratings: np.ndarray
    timestamps: np.ndarray
    item_tags: sp.csr_matrix
    user_tags: sp.csr_matrix
    follows: sp.csr_matrix
    taggings: np.ndarray  # structured: user, item, tag (int32), ts (int64, -1 = unknown)
    facts: np.ndarray  # structured: item, predicate, entity (int32)
    item_titles: tuple[str | None, ...]
    tag_names: tuple[str, ...]
    tag_kinds: tuple[str, ...]
    entity_labels: tuple[str | None, ...]
    user_attrs: tuple[dict[str, Any], ...]
    item_attrs: tuple[dict[str, Any], ...]
    fingerprint: str = ""
    #: users × items, 1 where the user DISLIKED the item (never served to them; no model trains on it).
    dislikes: sp.csr_matrix | None = None
    #: Ids of items flagged hidden when the snapshot was taken (never served).
    hidden: frozenset[str] = frozenset()
    #: Attribute nodes (sorted ids, kinds, names) and users × attributes, 1 per HAS_ATTRIBUTE; item
    #: locations in degrees, NaN where unknown (``graph.snapshot_profiles_places``).
    attributes: IdIndex = field(default_factory=lambda: IdIndex.of([]))
    attribute_kinds: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()
    user_attributes: sp.csr_matrix | None = None
    item_lat: np.ndarray | None = None
    item_lon: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.dislikes is None:
            object.__setattr__(self, "dislikes", sp.csr_matrix((len(self.users), len(self.items)), dtype=np.float32))
        for name, value in defaults(len(self.users), len(self.attributes), len(self.items)).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def counts(self) -> dict[str, int]:
        assert self.dislikes is not None  # __post_init__ fills it
        return {
            "users": len(self.users),
            "items": len(self.items),
            "tags": len(self.tags),
            "interactions": int(self.interactions.nnz),
            "taggings": len(self.taggings),
            "item_tags": int(self.item_tags.nnz),
            "follows": int(self.follows.nnz),
            "facts": len(self.facts),
            "dislikes": int(self.dislikes.nnz),
            "attributes": len(self.attributes),
            "has_attribute": int(self.user_attributes.nnz),  # type: ignore[union-attr]  # __post_init__ fills it
        }

    def user_items(self, user: int) -> np.ndarray:
        """Item indices a user interacted with."""
        r = self.interactions
        return r.indices[r.indptr[user] : r.indptr[user + 1]]

    def title(self, item: int) -> str:
        return self.item_titles[item] or self.items.ids[item]

    def with_interactions(
        self,
        matrix: sp.csr_matrix,
        taggings: np.ndarray | None = None,
        *,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        item_tags: sp.csr_matrix | None = None,
    ) -> GraphSnapshot:
        """The same graph with other interactions (a training split); side data is kept
        except taggings, which the caller filters so held-out pairs cannot leak.

        ``ratings``/``timestamps`` (aligned with ``matrix.data``, which must then be in
        canonical sorted CSR order) and ``item_tags`` (recounted without held-out taggings)
        are optional; without them ratings are unknown and item tags are kept.
        """
        aligned = ratings is not None or timestamps is not None
        if aligned and not (sp.issparse(matrix) and matrix.format == "csr" and matrix.has_sorted_indices):
            raise ValueError("ratings/timestamps need a CSR matrix with sorted indices")
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.sort_indices()
        n = matrix.nnz
        for name, arr in (("ratings", ratings), ("timestamps", timestamps)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} values for {n} interactions")
        tg = self.taggings if taggings is None else taggings
        user_tags = _user_tags(tg, len(self.users), len(self.tags))
        snap = GraphSnapshot(
            users=self.users, items=self.items, tags=self.tags, entities=self.entities,
            predicates=self.predicates, interactions=matrix,
            ratings=np.full(n, np.nan, dtype=np.float32) if ratings is None else np.asarray(ratings, np.float32),
            timestamps=np.full(n, -1, dtype=np.int64) if timestamps is None else np.asarray(timestamps, np.int64),
            item_tags=self.item_tags if item_tags is None else sp.csr_matrix(item_tags, dtype=np.float32),
            user_tags=user_tags, follows=self.follows, taggings=tg,
            facts=self.facts, item_titles=self.item_titles, tag_names=self.tag_names,
            tag_kinds=self.tag_kinds, entity_labels=self.entity_labels,
            user_attrs=self.user_attrs, item_attrs=self.item_attrs,
            dislikes=self.dislikes, hidden=self.hidden, attributes=self.attributes,
            attribute_kinds=self.attribute_kinds, attribute_names=self.attribute_names,
            user_attributes=self.user_attributes, item_lat=self.item_lat, item_lon=self.item_lon,
        )
        return _with_fingerprint(snap)

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``arrays.npz`` (numbers) and ``snapshot.json`` (strings); no pickle."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        assert self.dislikes is not None  # __post_init__ fills it
        arrays = {
            **_csr_arrays("interactions", self.interactions),
            **_csr_arrays("item_tags", self.item_tags),
            **_csr_arrays("user_tags", self.user_tags),
            **_csr_arrays("follows", self.follows),
            **_csr_arrays("dislikes", self.dislikes),
            **_csr_arrays("user_attributes", self.user_attributes),
            "item_lat": self.item_lat, "item_lon": self.item_lon,
            "ratings": self.ratings,
            "timestamps": self.timestamps,
            "taggings": np.asarray(self.taggings, dtype=TAGGING_FIELDS),
            "facts": np.asarray(self.facts, dtype=FACT_FIELDS),
        }
        save_arrays(d / "arrays", arrays)
        meta = {
            "format": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "counts": self.counts,
            "users": list(self.users.ids),
            "items": list(self.items.ids),
            "tags": list(self.tags.ids),
            "entities": list(self.entities.ids),
            "predicates": list(self.predicates),
            "item_titles": list(self.item_titles),
            "tag_names": list(self.tag_names),
            "tag_kinds": list(self.tag_kinds),
            "entity_labels": list(self.entity_labels),
            "user_attrs": list(self.user_attrs),
            "item_attrs": list(self.item_attrs),
            "hidden": sorted(self.hidden),
            "attributes": list(self.attributes.ids), "attribute_kinds": list(self.attribute_kinds),
            "attribute_names": list(self.attribute_names),
        }
        (d / "snapshot.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> GraphSnapshot:
        d = Path(directory)
        meta = json.loads((d / "snapshot.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{d}: snapshot format {meta.get('format')} is not {FORMAT_VERSION} "
                             "(written by an older kgrec: take the snapshot again, or retrain with kgrec train)")
        a = map_arrays(d / "arrays")
        users, items, tags = IdIndex.of(meta["users"]), IdIndex.of(meta["items"]), IdIndex.of(meta["tags"])
        snap = cls(
            users=users, items=items, tags=tags, entities=IdIndex.of(meta["entities"]),
            predicates=tuple(meta["predicates"]),
            interactions=_csr_from(a, "interactions", (len(users), len(items))),
            ratings=a["ratings"], timestamps=a["timestamps"],
            item_tags=_csr_from(a, "item_tags", (len(items), len(tags))),
            user_tags=_csr_from(a, "user_tags", (len(users), len(tags))),
            follows=_csr_from(a, "follows", (len(users), len(users))),
            taggings=_records(a["taggings"], TAGGING_FIELDS, "taggings"),
            facts=_records(a["facts"], FACT_FIELDS, "facts"),
            item_titles=tuple(meta["item_titles"]), tag_names=tuple(meta["tag_names"]),
            tag_kinds=tuple(meta["tag_kinds"]), entity_labels=tuple(meta["entity_labels"]),
            user_attrs=tuple(meta["user_attrs"]), item_attrs=tuple(meta["item_attrs"]),
            fingerprint=meta["fingerprint"],
            dislikes=_csr_from(a, "dislikes", (len(users), len(items))) if "dislikes.data" in a else None,
            hidden=frozenset(meta.get("hidden", ())), attributes=IdIndex.of(meta.get("attributes", [])),
            attribute_kinds=tuple(meta.get("attribute_kinds", ())),
            attribute_names=tuple(meta.get("attribute_names", ())),
            user_attributes=_csr_from(a, "user_attributes", (len(users), len(meta.get("attributes", []))))
            if "user_attributes.data" in a else None, item_lat=a.get("item_lat"), item_lon=a.get("item_lon"),
        )
        if _fingerprint(snap) != snap.fingerprint:
            raise ValueError(f"{d}: snapshot content does not match its fingerprint")
        return snap


TAGGING_FIELDS = [("user", np.int32), ("item", np.int32), ("tag", np.int32), ("ts", np.int64)]
FACT_FIELDS = [("item", np.int32), ("predicate", np.int32), ("entity", np.int32)]


def build_snapshot(records: GraphRecords) -> GraphSnapshot:
    """Build a snapshot from records; ids are sorted so the result is canonical."""
    user_ids = {u.id for u in records.users}
    item_ids = {i.id for i in records.items}
    tag_ids = {t.id for t in records.tags}
    for r in records.interactions:
        user_ids.add(r.user)
        item_ids.add(r.item)
    for t in records.taggings:
        user_ids.add(t.user)
        item_ids.add(t.item)
        tag_ids.add(t.tag)
    for x in records.item_tags:
        item_ids.add(x.item)
        tag_ids.add(x.tag)
    for fw in records.follows:
        user_ids.update((fw.user, fw.friend))
    user_ids.update(x.user for x in records.has_attribute)
    item_ids.update(f.item for f in records.facts)
    users, items, tags = IdIndex.of(user_ids), IdIndex.of(item_ids), IdIndex.of(tag_ids)
    entities = IdIndex.of({f.entity for f in records.facts})
    predicates = tuple(sorted({f.predicate for f in records.facts}))
    pred_index = {p: i for i, p in enumerate(predicates)}
    nu, ni, nt = len(users), len(items), len(tags)

    inter = sorted(records.interactions, key=lambda r: (users.index[r.user], items.index[r.item]))
    rows = np.fromiter((users.index[r.user] for r in inter), dtype=np.int64, count=len(inter))
    cols = np.fromiter((items.index[r.item] for r in inter), dtype=np.int64, count=len(inter))
    weights = np.fromiter((r.weight for r in inter), dtype=np.float32, count=len(inter))
    ratings = np.array([np.nan if r.rating is None else r.rating for r in inter], dtype=np.float32)
    stamps = np.array([-1 if r.ts is None else r.ts for r in inter], dtype=np.int64)
    matrix = _csr(rows, cols, weights, (nu, ni))
    if matrix.nnz != len(inter):
        raise ValueError("duplicate (user, item) interactions in records; stores keep one per pair")

    tg = np.array(
        sorted(
            (users.index[t.user], items.index[t.item], tags.index[t.tag], -1 if t.ts is None else t.ts)
            for t in records.taggings
        ),
        dtype=TAGGING_FIELDS,
    )
    it = [(items.index[r.item], tags.index[r.tag], r.count) for r in records.item_tags]
    item_tags = _csr(*_cols(it), (ni, nt))
    fo = [(users.index[r.user], users.index[r.friend], r.weight) for r in records.follows]
    follows = _csr(*_cols(fo), (nu, nu))
    facts = np.array(
        sorted({(items.index[f.item], pred_index[f.predicate], entities.index[f.entity]) for f in records.facts}),
        dtype=FACT_FIELDS,
    )
    # Dislikes and hidden flags of nodes the rest of the graph does not hold are left out: an
    # item nobody interacted with is never recommended anyway.
    dl = [(users.index[r.user], items.index[r.item], 1.0) for r in records.dislikes
          if r.user in users.index and r.item in items.index]
    dislikes = _csr(*_cols(dl), (nu, ni))

    titles: dict[str, str | None] = {i.id: i.title for i in records.items}
    tag_rec = {t.id: t for t in records.tags}
    ent_labels: dict[str, str | None] = {}
    for f in records.facts:
        if f.entity_label is not None or f.entity not in ent_labels:
            ent_labels[f.entity] = f.entity_label
    attribute_ids, kinds, names, links = attribute_parts(records, users.index)
    lat, lon = location_parts(records, items.ids)
    uattrs = {u.id: dict(u.attrs) for u in records.users}
    iattrs = {i.id: dict(i.attrs) for i in records.items}
    snap = GraphSnapshot(
        users=users, items=items, tags=tags, entities=entities, predicates=predicates,
        interactions=matrix, ratings=ratings, timestamps=stamps,
        item_tags=item_tags, user_tags=_user_tags(tg, nu, nt), follows=follows,
        taggings=tg, facts=facts,
        item_titles=tuple(titles.get(i) for i in items.ids),
        tag_names=tuple(tag_rec[t].name if t in tag_rec else t for t in tags.ids),
        tag_kinds=tuple(tag_rec[t].kind if t in tag_rec else "tag" for t in tags.ids),
        entity_labels=tuple(ent_labels.get(e) for e in entities.ids),
        user_attrs=tuple(uattrs.get(u, {}) for u in users.ids),
        item_attrs=tuple(iattrs.get(i, {}) for i in items.ids),
        dislikes=dislikes, hidden=frozenset(h for h in records.hidden if h in items.index),
        attributes=IdIndex.of(attribute_ids), attribute_kinds=kinds, attribute_names=names,
        user_attributes=links, item_lat=lat, item_lon=lon,
    )
    return _with_fingerprint(snap)


def _cols(rows: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row, column and value columns of (row, column, value) triples."""
    if not rows:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    r, c, v = (np.asarray(col) for col in zip(*rows, strict=True))
    return r, c, v


def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix(
        (np.asarray(vals, dtype=np.float32), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=shape,
    )
    m.sum_duplicates()
    m.sort_indices()
    return m


def _user_tags(taggings: np.ndarray, n_users: int, n_tags: int) -> sp.csr_matrix:
    return _csr(taggings["user"], taggings["tag"], np.ones(len(taggings), dtype=np.float32), (n_users, n_tags))


def _csr_arrays(name: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A canonical matrix's parts with one index dtype, so that loading builds it over the
    mapped files without converting (copying) either index array."""
    idx = index_dtype(m.nnz, *m.shape)
    return {f"{name}.data": m.data, f"{name}.indices": m.indices.astype(idx, copy=False),
            f"{name}.indptr": m.indptr.astype(idx, copy=False)}


def _csr_from(a: dict[str, np.ndarray], name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((a[f"{name}.data"], a[f"{name}.indices"], a[f"{name}.indptr"]), shape=shape)


def _records(saved: np.ndarray, fields: list[tuple[str, Any]], name: str) -> np.ndarray:
    """A saved structured array (mapped as it is) when it has the fields' dtype."""
    if saved.dtype != np.dtype(fields) or saved.ndim != 1:
        raise ValueError(f"snapshot array {name} is {saved.dtype} {saved.shape}, not records of {fields}")
    return saved


def _with_fingerprint(s: GraphSnapshot) -> GraphSnapshot:
    object.__setattr__(s, "fingerprint", _fingerprint(s))
    return s


__all__ = ["COUNT_KEYS", "GraphSnapshot", "IdIndex", "build_snapshot"]
