"""MemoryStore: the embedded, zero-setup store — a networkx ``MultiDiGraph`` in a directory.

It mirrors the Neo4j model exactly: nodes are keyed ``(label, key)``, relationships carry
the same types and properties, and edge keys encode the uniqueness rules of
``graph.schema`` (one INTERACTED per pair, one TAGGED per (user, item, tag), ...), which is
what makes every upsert idempotent. The graph lives in memory; ``flush()`` writes it to
``graph.jsonl.gz`` through a temporary file and ``os.replace``, so a crash leaves either the
old file or the new one, never half of one. Loading parses JSON only: nothing a user can
hand in is ever unpickled.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
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

FILE_NAME = "graph.jsonl.gz"
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


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise StoreError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _props(**values: Any) -> dict[str, Any]:
    """Properties without the absent ones: like Neo4j, a property is never stored as null."""
    return {k: v for k, v in values.items() if v is not None}


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

    # -- node and edge primitives -------------------------------------------------------
    def _touch(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        self._dirty = True
        self._version += 1

    def _ensure(self, label: Label, key: str) -> NodeKey:
        node = (label, key)
        if node not in self.graph:
            attrs = {"attrs": {}} if label in (Label.USER, Label.ITEM) else {}
            self.graph.add_node(node, **{"iri" if label is Label.ENTITY else "id": key}, **attrs)
        return node

    def _edge(self, src: NodeKey, dst: NodeKey, rel: Rel, ekey: Any, props: dict[str, Any]) -> None:
        data = self.graph.get_edge_data(src, dst, ekey)
        if data is None:
            self.graph.add_edge(src, dst, ekey, rel=rel, props=props)
            self._rel_counts[rel] += 1
        else:
            data["props"] = props

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

    # -- writes -------------------------------------------------------------------------
    def upsert_users(self, rows: Iterable[User]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.id, "user id")
        self._touch()
        for r in rows:
            node = self._ensure(Label.USER, r.id)
            self.graph.nodes[node]["attrs"] = dict(r.attrs)
        return len(rows)

    def upsert_items(self, rows: Iterable[Item]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.id, "item id")
        self._touch()
        for r in rows:
            data = self.graph.nodes[self._ensure(Label.ITEM, r.id)]
            data["attrs"] = dict(r.attrs)
            if r.title is None:
                data.pop("title", None)
            else:
                data["title"] = r.title
        return len(rows)

    def upsert_tags(self, rows: Iterable[Tag]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.id, "tag id")
        self._touch()
        for r in rows:
            data = self.graph.nodes[self._ensure(Label.TAG, r.id)]
            data["name"] = r.name
            data["kind"] = r.kind
        return len(rows)

    def upsert_interactions(self, rows: Iterable[Interaction]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.user, "interaction user")
            _check_id(r.item, "interaction item")
        self._touch()
        for r in rows:
            u, i = self._ensure(Label.USER, r.user), self._ensure(Label.ITEM, r.item)
            self._edge(u, i, Rel.INTERACTED, Rel.INTERACTED.value, _props(weight=r.weight, rating=r.rating, ts=r.ts))
        return len(rows)

    def upsert_taggings(self, rows: Iterable[Tagging]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.user, "tagging user")
            _check_id(r.item, "tagging item")
            _check_id(r.tag, "tagging tag")
        self._touch()
        for r in rows:
            u, i = self._ensure(Label.USER, r.user), self._ensure(Label.ITEM, r.item)
            self._ensure(Label.TAG, r.tag)
            self._edge(u, i, Rel.TAGGED, (Rel.TAGGED.value, r.tag), _props(tag=r.tag, ts=r.ts))
        return len(rows)

    def upsert_item_tags(self, rows: Iterable[ItemTag]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.item, "item tag item")
            _check_id(r.tag, "item tag tag")
        self._touch()
        for r in rows:
            i, t = self._ensure(Label.ITEM, r.item), self._ensure(Label.TAG, r.tag)
            self._edge(i, t, Rel.HAS_TAG, Rel.HAS_TAG.value, _props(count=r.count))
        return len(rows)

    def upsert_follows(self, rows: Iterable[Follow]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.user, "follow user")
            _check_id(r.friend, "follow friend")
        self._touch()
        for r in rows:
            u, f = self._ensure(Label.USER, r.user), self._ensure(Label.USER, r.friend)
            self._edge(u, f, Rel.FOLLOWS, Rel.FOLLOWS.value, _props(weight=r.weight))
        return len(rows)

    def upsert_facts(self, rows: Iterable[Fact]) -> int:
        rows = list(rows)
        for r in rows:
            _check_id(r.item, "fact item")
            _check_id(r.predicate, "fact predicate")
            _check_id(r.entity, "fact entity")
        self._touch()
        for r in rows:
            i, e = self._ensure(Label.ITEM, r.item), self._ensure(Label.ENTITY, r.entity)
            if r.entity_label is not None:
                self.graph.nodes[e]["label"] = r.entity_label
            self._edge(i, e, Rel.RELATED, (Rel.RELATED.value, r.predicate), _props(predicate=r.predicate))
        return len(rows)

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
            if self.graph.has_edge(u, i, Rel.INTERACTED.value):
                self.graph.remove_edge(u, i, Rel.INTERACTED.value)
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
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".graph-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                    gz.write("".join(self._lines()).encode("utf-8"))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, self.directory / FILE_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
    def _lines(self) -> Iterator[str]:
        """One compact JSON array per node or relationship, after a header line."""
        dump = json.dumps
        yield dump({"format": FORMAT, "version": FORMAT_VERSION}) + "\n"
        for (label, key), data in self.graph.nodes(data=True):
            if label is Label.USER:
                yield dump(["user", key, data["attrs"]], ensure_ascii=False) + "\n"
            elif label is Label.ITEM:
                yield dump(["item", key, data.get("title"), data["attrs"]], ensure_ascii=False) + "\n"
            elif label is Label.TAG:
                yield dump(["tag", key, data.get("name"), data.get("kind")], ensure_ascii=False) + "\n"
            else:
                yield dump(["entity", key, data.get("label")], ensure_ascii=False) + "\n"
        for (_, src), (_, dst), data in self.graph.edges(data=True):
            rel, p = data["rel"], data["props"]
            if rel is Rel.INTERACTED:
                row: list[Any] = ["interacted", src, dst, p["weight"], p.get("rating"), p.get("ts")]
            elif rel is Rel.TAGGED:
                row = ["tagged", src, dst, p["tag"], p.get("ts")]
            elif rel is Rel.HAS_TAG:
                row = ["has_tag", src, dst, p["count"]]
            elif rel is Rel.FOLLOWS:
                row = ["follows", src, dst, p["weight"]]
            else:
                row = ["related", src, p["predicate"], dst]
            yield dump(row, ensure_ascii=False) + "\n"

    def _read(self, path: Path) -> None:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                header = json.loads(fh.readline() or "null")
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise StoreError(f"{path} is not a kgrec memory store file")
                if header.get("version") != FORMAT_VERSION:
                    raise StoreError(f"{path}: store format version {header.get('version')} is not {FORMAT_VERSION}")
                for lineno, line in enumerate(fh, start=2):
                    try:
                        self._apply(json.loads(line))
                    except (ValueError, TypeError, KeyError, IndexError) as exc:
                        raise StoreError(f"{path}, line {lineno}: corrupt store record ({exc})") from exc
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path} is unreadable or not a kgrec memory store: {exc}") from exc
        self._dirty = False

    def _apply(self, row: list[Any]) -> None:
        kind = row[0]
        if kind == "user":
            self.graph.add_node((Label.USER, _check_id(row[1], "user id")), id=row[1], attrs=_attrs(row[2]))
        elif kind == "item":
            self.graph.add_node(
                (Label.ITEM, _check_id(row[1], "item id")), id=row[1], attrs=_attrs(row[3]), **_props(title=row[2])
            )
        elif kind == "tag":
            self.graph.add_node((Label.TAG, _check_id(row[1], "tag id")), id=row[1], **_props(name=row[2], kind=row[3]))
        elif kind == "entity":
            self.graph.add_node((Label.ENTITY, _check_id(row[1], "entity iri")), iri=row[1], **_props(label=row[2]))
        elif kind == "interacted":
            _, u, i, w, rating, ts = row
            self._stored_edge(Label.USER, u, Label.ITEM, i, Rel.INTERACTED, Rel.INTERACTED.value,
                              _props(weight=_num(w), rating=_num(rating), ts=_int(ts)))
        elif kind == "tagged":
            _, u, i, tag, ts = row
            self._stored_edge(Label.USER, u, Label.ITEM, i, Rel.TAGGED, (Rel.TAGGED.value, tag),
                              _props(tag=_check_id(tag, "tag"), ts=_int(ts)))
        elif kind == "has_tag":
            _, i, t, count = row
            self._stored_edge(Label.ITEM, i, Label.TAG, t, Rel.HAS_TAG, Rel.HAS_TAG.value, {"count": _num(count)})
        elif kind == "follows":
            _, u, f, w = row
            self._stored_edge(Label.USER, u, Label.USER, f, Rel.FOLLOWS, Rel.FOLLOWS.value, {"weight": _num(w)})
        elif kind == "related":
            _, i, pred, e = row
            self._stored_edge(Label.ITEM, i, Label.ENTITY, e, Rel.RELATED, (Rel.RELATED.value, pred),
                              {"predicate": _check_id(pred, "predicate")})
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def _stored_edge(
        self, sl: Label, s: str, dl: Label, d: str, rel: Rel, ekey: Any, props: dict[str, Any]
    ) -> None:
        src, dst = (sl, s), (dl, d)
        if src not in self.graph or dst not in self.graph:
            raise ValueError(f"{rel.value} refers to a node that is not in the file")
        self._edge(src, dst, rel, ekey, props)


def _attrs(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("attributes must be an object")
    return value


def _num(value: object) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"expected a finite number, got {value!r}")
    return value


def _int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value
