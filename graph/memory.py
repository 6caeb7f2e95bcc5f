"""MemoryStore: the embedded, zero-setup store — a networkx ``MultiDiGraph`` in a directory.

It mirrors the Neo4j model exactly: nodes are keyed ``(label, key)``, relationships carry
the same types and properties, and edge keys encode the uniqueness rules of
``graph.schema`` (one INTERACTED per pair, one TAGGED per (user, item, tag), ...), which is
what makes every upsert idempotent. The graph lives in memory; ``flush()`` writes it as one
gzipped JSON document (``graph.json.gz``) through a temporary file and ``os.replace``, so a
crash leaves either the old file or the new one, never half of one. Reading parses JSON and
checks every row: nothing a user can hand in is ever unpickled.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from graph.records import (
    COUNT_KEYS,
    Fact,
    Follow,
    GraphRecords,
    Interaction,
    Item,
    ItemTag,
    Tag,
    Tagging,
    User,
)
from graph.schema import ATTR_PREFIX, Label, Rel
from graph.store import DISPLAY_PROPERTY, GraphStore, Neighbor, StoreError, neighbor_order

if TYPE_CHECKING:
    from graph.snapshot import GraphSnapshot

FILE_NAME = "graph.json.gz"
FORMAT = "kgrec-memory-store"
FORMAT_VERSION = 1

#: Which ``counts()`` key each relationship type feeds.
REL_COUNT_KEY = {
    Rel.INTERACTED: "interactions",
    Rel.TAGGED: "taggings",
    Rel.HAS_TAG: "item_tags",
    Rel.FOLLOWS: "follows",
    Rel.RELATED: "facts",
}
LABEL_COUNT_KEY = {Label.USER: "users", Label.ITEM: "items", Label.TAG: "tags"}

NodeKey = tuple[Label, str]


def _opt(props: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Add the present values: like Neo4j, a property is never stored as null."""
    for k, v in values.items():
        if v is not None:
            props[k] = v
    return props


def _interaction(weight: float, rating: float | None, ts: int | None) -> dict[str, Any]:
    props: dict[str, Any] = {"weight": weight}
    if rating is not None:
        props["rating"] = rating
    if ts is not None:
        props["ts"] = ts
    return props


# Edge keys of the MultiDiGraph: they carry the uniqueness rule of each relationship type.
_INTERACTED, _HAS_TAG, _FOLLOWS = Rel.INTERACTED.value, Rel.HAS_TAG.value, Rel.FOLLOWS.value
_TAGGED, _RELATED = Rel.TAGGED.value, Rel.RELATED.value


class MemoryStore(GraphStore):
    """A networkx graph persisted atomically in ``directory`` (created on first flush)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise StoreError(f"{self.directory} is not a directory; memory:// needs a directory path")
        self.graph = nx.MultiDiGraph()
        self._rel_counts: Counter[Rel] = Counter()
        self._dirty = False
        self._version = 0
        self._snapshot: tuple[int, GraphSnapshot] | None = None
        self._closed = False
        path = self.directory / FILE_NAME
        if path.exists():
            self._read(path)
        self._on_disk = _signature(path)

    # -- node and edge primitives -------------------------------------------------------
    def _touch(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        self._dirty = True
        self._version += 1

    def _ensure(self, label: Label, keys: Iterable[str]) -> None:
        """Create the missing nodes among ``keys`` with only their key (in bulk: it is hot)."""
        graph = self.graph
        missing = [k for k in dict.fromkeys(keys) if (label, k) not in graph]
        if label is Label.ENTITY:
            graph.add_nodes_from(((label, k), {"iri": k}) for k in missing)
        elif label is Label.TAG:
            graph.add_nodes_from(((label, k), {"id": k}) for k in missing)
        else:
            graph.add_nodes_from(((label, k), {"id": k, "attrs": {}}) for k in missing)

    def _edges(self, rel: Rel, edges: Iterable[tuple[NodeKey, NodeKey, Any, dict[str, Any]]]) -> None:
        """Upsert relationships whose end nodes exist; an existing key gets the new properties."""
        has, add = self.graph.has_edge, self.graph.add_edge
        new = 0
        for src, dst, ekey, props in edges:
            if not has(src, dst, ekey):
                new += 1
            add(src, dst, ekey, rel=rel, props=props)
        self._rel_counts[rel] += new

    def _remove_node(self, node: NodeKey) -> bool:
        if node not in self.graph:
            return False
        for _, _, data in self.graph.in_edges(node, data=True):
            self._rel_counts[data["rel"]] -= 1
        for _, dst, data in self.graph.out_edges(node, data=True):
            if dst != node:  # a self-loop was already counted among the in-edges
                self._rel_counts[data["rel"]] -= 1
        self.graph.remove_node(node)
        return True

    # -- rows: the persisted form of each kind, shared by upserts and by reading the file --
    def _put_users(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        self._ensure(Label.USER, (r[0] for r in rows))
        nodes = self.graph.nodes
        for key, attrs in rows:
            nodes[(Label.USER, key)]["attrs"] = dict(attrs)

    def _put_items(self, rows: list[tuple[str, str | None, dict[str, Any]]]) -> None:
        self._ensure(Label.ITEM, (r[0] for r in rows))
        nodes = self.graph.nodes
        for key, title, attrs in rows:
            data = nodes[(Label.ITEM, key)]
            data["attrs"] = dict(attrs)
            if title is None:
                data.pop("title", None)
            else:
                data["title"] = title

    def _put_tags(self, rows: list[tuple[str, str | None, str | None]]) -> None:
        self._ensure(Label.TAG, (r[0] for r in rows))
        nodes = self.graph.nodes
        for key, name, kind in rows:
            _opt(nodes[(Label.TAG, key)], name=name, kind=kind)

    def _put_entities(self, rows: list[tuple[str, str | None]]) -> None:
        """Entities; a missing label keeps the one already known (as a Fact without a label does)."""
        self._ensure(Label.ENTITY, (r[0] for r in rows))
        nodes = self.graph.nodes
        for key, label in rows:
            _opt(nodes[(Label.ENTITY, key)], label=label)

    def _put_interacted(self, rows: list[tuple[str, str, float, float | None, int | None]]) -> None:
        self._ensure(Label.USER, (r[0] for r in rows))
        self._ensure(Label.ITEM, (r[1] for r in rows))
        self._edges(Rel.INTERACTED, (
            ((Label.USER, u), (Label.ITEM, i), _INTERACTED, _interaction(w, rating, ts))
            for u, i, w, rating, ts in rows
        ))

    def _put_tagged(self, rows: list[tuple[str, str, str, int | None]]) -> None:
        self._ensure(Label.USER, (r[0] for r in rows))
        self._ensure(Label.ITEM, (r[1] for r in rows))
        self._ensure(Label.TAG, (r[2] for r in rows))
        self._edges(Rel.TAGGED, (
            ((Label.USER, u), (Label.ITEM, i), (_TAGGED, t), {"tag": t} if ts is None else {"tag": t, "ts": ts})
            for u, i, t, ts in rows
        ))

    def _put_has_tag(self, rows: list[tuple[str, str, float]]) -> None:
        self._ensure(Label.ITEM, (r[0] for r in rows))
        self._ensure(Label.TAG, (r[1] for r in rows))
        self._edges(Rel.HAS_TAG, (((Label.ITEM, i), (Label.TAG, t), _HAS_TAG, {"count": c}) for i, t, c in rows))

    def _put_follows(self, rows: list[tuple[str, str, float]]) -> None:
        self._ensure(Label.USER, (r[0] for r in rows))
        self._ensure(Label.USER, (r[1] for r in rows))
        self._edges(Rel.FOLLOWS, (((Label.USER, u), (Label.USER, f), _FOLLOWS, {"weight": w}) for u, f, w in rows))

    def _put_related(self, rows: list[tuple[str, str, str]]) -> None:
        self._ensure(Label.ITEM, (r[0] for r in rows))
        self._ensure(Label.ENTITY, (r[2] for r in rows))
        self._edges(Rel.RELATED, (
            ((Label.ITEM, i), (Label.ENTITY, e), (_RELATED, p), {"predicate": p}) for i, p, e in rows
        ))

    # -- writes -------------------------------------------------------------------------
    def _write(self, table: str, rows: list[tuple[Any, ...]], ids: Sequence[tuple[int, str]],
               put: Callable[[list[Any]], None] | None = None) -> int:
        """Check every row first (ids, then the value types the file format allows), so a bad
        row leaves the whole batch unwritten and nothing unstorable ever reaches the file."""
        fields = TABLES[table][0]
        for row in rows:
            for pos, what in ids:
                if not isinstance(row[pos], str) or not row[pos]:
                    raise StoreError(f"{what} must be a non-empty string, got {row[pos]!r}")
            try:
                _checked(row, fields)
            except ValueError as exc:
                raise StoreError(f"bad {table} row: {exc}") from exc
        self._touch()
        if put is None:
            TABLES[table][1](self, rows)
        else:
            put(rows)
        return len(rows)

    def upsert_users(self, rows: Iterable[User]) -> int:
        return self._write("users", [(r.id, r.attrs) for r in rows], [(0, "user id")])

    def upsert_items(self, rows: Iterable[Item]) -> int:
        return self._write("items", [(r.id, r.title, r.attrs) for r in rows], [(0, "item id")])

    def upsert_tags(self, rows: Iterable[Tag]) -> int:
        return self._write("tags", [(r.id, r.name, r.kind) for r in rows], [(0, "tag id")])

    def upsert_interactions(self, rows: Iterable[Interaction]) -> int:
        return self._write(
            "interacted", [(r.user, r.item, r.weight, r.rating, r.ts) for r in rows],
            [(0, "interaction user"), (1, "interaction item")],
        )

    def upsert_taggings(self, rows: Iterable[Tagging]) -> int:
        return self._write(
            "tagged", [(r.user, r.item, r.tag, r.ts) for r in rows],
            [(0, "tagging user"), (1, "tagging item"), (2, "tagging tag")],
        )

    def upsert_item_tags(self, rows: Iterable[ItemTag]) -> int:
        return self._write(
            "has_tag", [(r.item, r.tag, r.count) for r in rows], [(0, "item tag item"), (1, "item tag tag")]
        )

    def upsert_follows(self, rows: Iterable[Follow]) -> int:
        return self._write(
            "follows", [(r.user, r.friend, r.weight) for r in rows], [(0, "follow user"), (1, "follow friend")]
        )

    def upsert_facts(self, rows: Iterable[Fact]) -> int:
        rows = list(rows)
        for r in rows:
            if r.entity_label is not None and not isinstance(r.entity_label, str):
                raise StoreError(f"entity label must be a string, got {r.entity_label!r}")

        def put(facts: list[tuple[str, str, str]]) -> None:
            self._put_entities([(r.entity, r.entity_label) for r in rows])
            self._put_related(facts)

        return self._write(
            "related", [(r.item, r.predicate, r.entity) for r in rows],
            [(0, "fact item"), (1, "fact predicate"), (2, "fact entity")], put,
        )

    def delete_users(self, ids: Iterable[str]) -> int:
        self._touch()
        return sum(self._remove_node((Label.USER, k)) for k in set(ids))

    def delete_items(self, ids: Iterable[str]) -> int:
        self._touch()
        return sum(self._remove_node((Label.ITEM, k)) for k in set(ids))

    def delete_interactions(self, pairs: Iterable[tuple[str, str]]) -> int:
        self._touch()
        removed = 0
        for user, item in set(pairs):
            u, i = (Label.USER, user), (Label.ITEM, item)
            if self.graph.has_edge(u, i, _INTERACTED):
                self.graph.remove_edge(u, i, _INTERACTED)
                self._rel_counts[Rel.INTERACTED] -= 1
                removed += 1
        return removed

    def clear(self) -> None:
        self._touch()
        self.graph.clear()
        self._rel_counts.clear()

    def flush(self) -> None:
        """Write the graph atomically (temp file in the same directory, then ``os.replace``)."""
        if not self._dirty or self._closed:
            return
        path = self.directory / FILE_NAME
        if _signature(path) != self._on_disk:
            raise StoreError(
                f"{path} was rewritten by another process or store since this one read it; "
                "reopen the store and repeat the write (refusing to overwrite the newer graph)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".graph-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                    gz.write(json.dumps(self._document(), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._on_disk = _signature(path)
        self._dirty = False

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    # -- reads --------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(COUNT_KEYS, 0)
        for label, _ in self.graph.nodes:
            key = LABEL_COUNT_KEY.get(label)
            if key:
                out[key] += 1
        for rel, n in self._rel_counts.items():
            if rel in REL_COUNT_KEY:
                out[REL_COUNT_KEY[rel]] += n
        return out

    def get_node(self, label: Label, key: str) -> dict[str, Any] | None:
        data = self.graph.nodes.get((Label(label), key))
        if data is None:
            return None
        out = dict(data)
        if "attrs" in out:
            out["attrs"] = dict(out["attrs"])
        return out

    def _name(self, node: NodeKey) -> str | None:
        prop = DISPLAY_PROPERTY[node[0]]
        data = self.graph.nodes[node]
        if prop.startswith(ATTR_PREFIX):
            value = data.get("attrs", {}).get(prop[len(ATTR_PREFIX) :])
            return None if value is None else str(value)
        return data.get(prop)

    def neighbors(
        self, label: Label, key: str, rels: Sequence[Rel] | None = None, limit: int = 100
    ) -> list[Neighbor]:
        node = (Label(label), key)
        if node not in self.graph:
            return []
        wanted = None if rels is None else {Rel(r) for r in rels}
        found: list[Neighbor] = []
        sides = ((self.graph.out_edges(node, data=True), True), (self.graph.in_edges(node, data=True), False))
        for edges, outgoing in sides:
            for src, dst, data in edges:
                if wanted is not None and data["rel"] not in wanted:
                    continue
                (olabel, okey) = other = dst if outgoing else src
                found.append(Neighbor(data["rel"], outgoing, olabel, okey, self._name(other), dict(data["props"])))
        found.sort(key=neighbor_order)
        return found[: max(limit, 0)]

    def has_relationship(self, src: tuple[Label, str], rel: Rel, dst: tuple[Label, str]) -> bool:
        s, d, rel = (Label(src[0]), src[1]), (Label(dst[0]), dst[1]), Rel(rel)
        edges = self.graph.get_edge_data(s, d)
        return bool(edges) and any(data["rel"] is rel for data in edges.values())

    def export(self) -> GraphRecords:
        out = GraphRecords()
        for (label, key), data in self.graph.nodes(data=True):
            if label is Label.USER:
                out.users.append(User(key, dict(data["attrs"])))
            elif label is Label.ITEM:
                out.items.append(Item(key, data.get("title"), dict(data["attrs"])))
            elif label is Label.TAG:
                out.tags.append(Tag(key, data.get("name", key), data.get("kind", "tag")))
        nodes = self.graph.nodes
        for (_, src), (_, dst), data in self.graph.edges(data=True):
            rel, p = data["rel"], data["props"]
            if rel is Rel.INTERACTED:
                out.interactions.append(Interaction(src, dst, p["weight"], p.get("rating"), p.get("ts")))
            elif rel is Rel.TAGGED:
                out.taggings.append(Tagging(src, dst, p["tag"], p.get("ts")))
            elif rel is Rel.HAS_TAG:
                out.item_tags.append(ItemTag(src, dst, p["count"]))
            elif rel is Rel.FOLLOWS:
                out.follows.append(Follow(src, dst, p["weight"]))
            elif rel is Rel.RELATED:
                out.facts.append(Fact(src, p["predicate"], dst, nodes[(Label.ENTITY, dst)].get("label")))
        return out

    def snapshot(self) -> GraphSnapshot:
        """Built from ``export()`` like every store's, and cached until the next write."""
        if self._snapshot is None or self._snapshot[0] != self._version:
            self._snapshot = (self._version, super().snapshot())
        return self._snapshot[1]

    # -- persistence --------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        """The whole graph as one JSON object of row lists (the ``_put_*`` row shapes)."""
        doc: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, **{k: [] for k in TABLES}}
        for (label, key), data in self.graph.nodes(data=True):
            if label is Label.USER:
                doc["users"].append((key, data["attrs"]))
            elif label is Label.ITEM:
                doc["items"].append((key, data.get("title"), data["attrs"]))
            elif label is Label.TAG:
                doc["tags"].append((key, data.get("name"), data.get("kind")))
            else:
                doc["entities"].append((key, data.get("label")))
        rows = {Rel.INTERACTED: doc["interacted"], Rel.TAGGED: doc["tagged"], Rel.HAS_TAG: doc["has_tag"],
                Rel.FOLLOWS: doc["follows"], Rel.RELATED: doc["related"]}
        for (_, src), (_, dst), data in self.graph.edges(data=True):
            rel, p = data["rel"], data["props"]
            if rel is Rel.INTERACTED:
                rows[rel].append((src, dst, p["weight"], p.get("rating"), p.get("ts")))
            elif rel is Rel.TAGGED:
                rows[rel].append((src, dst, p["tag"], p.get("ts")))
            elif rel is Rel.HAS_TAG:
                rows[rel].append((src, dst, p["count"]))
            elif rel is Rel.FOLLOWS:
                rows[rel].append((src, dst, p["weight"]))
            else:
                rows[rel].append((src, p["predicate"], dst))
        return doc

    def _read(self, path: Path) -> None:
        try:
            with gzip.open(path, "rb") as fh:
                doc = json.loads(fh.read().decode("utf-8"))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"{path} is unreadable or not a kgrec memory store: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise StoreError(f"{path} is not a kgrec memory store file")
        if doc.get("version") != FORMAT_VERSION:
            raise StoreError(f"{path}: store format version {doc.get('version')} is not {FORMAT_VERSION}")
        for table, (fields, put) in TABLES.items():
            rows = doc.get(table)
            if not isinstance(rows, list):
                raise StoreError(f"{path}: corrupt store file: {table!r} is not a list")
            try:
                checked = [_checked(row, fields) for row in rows]
            except (TypeError, ValueError) as exc:
                raise StoreError(f"{path}: corrupt {table} row: {exc}") from exc
            put(self, checked)
        self._dirty = False


def _signature(path: Path) -> tuple[int, int, int] | None:
    """Identity of the file on disk (a replace makes a new inode), or None when absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# Checks of the persisted row fields (one function per field kind, as reading is hot).
def _id(v: object) -> bool:
    return type(v) is str and v != ""


def _str_or_none(v: object) -> bool:
    return v is None or type(v) is str


def _num(v: object) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


def _num_or_none(v: object) -> bool:
    return v is None or _num(v)


def _int_or_none(v: object) -> bool:
    return v is None or type(v) is int


def _attrs(v: object) -> bool:
    return type(v) is dict and all(type(x) in (str, int, float, bool) for x in v.values())


def _checked(row: Any, fields: tuple[Callable[[object], bool], ...]) -> Any:
    if type(row) not in (list, tuple) or len(row) != len(fields):
        raise ValueError(f"{row!r} does not have {len(fields)} fields")
    for value, ok in zip(row, fields, strict=True):
        if not ok(value):
            raise ValueError(f"{row!r}: {value!r} fails {ok.__name__.strip('_')}")
    return row


#: Persisted tables in write order (nodes first): their field kinds and the method that applies them.
TABLES: dict[str, tuple[tuple[Callable[[object], bool], ...], Callable[[MemoryStore, list[Any]], None]]] = {
    "users": ((_id, _attrs), MemoryStore._put_users),
    "items": ((_id, _str_or_none, _attrs), MemoryStore._put_items),
    "tags": ((_id, _str_or_none, _str_or_none), MemoryStore._put_tags),
    "entities": ((_id, _str_or_none), MemoryStore._put_entities),
    "interacted": ((_id, _id, _num, _num_or_none, _int_or_none), MemoryStore._put_interacted),
    "tagged": ((_id, _id, _id, _int_or_none), MemoryStore._put_tagged),
    "has_tag": ((_id, _id, _num), MemoryStore._put_has_tag),
    "follows": ((_id, _id, _num), MemoryStore._put_follows),
    "related": ((_id, _id, _id), MemoryStore._put_related),
}
