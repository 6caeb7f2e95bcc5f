"""How MemoryStore answers reads: counts, nodes, neighbours and the whole graph as records.

Plain functions of the networkx graph that the writes keep (``graph.memory_rows``), in the
shapes ``Neo4jStore`` returns, so the store contract tests hold for both. Reads that depend on
other processes' writes (``feedback``, ``snapshot``) stay in ``graph.memory``, which refreshes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np

from kgrec.graph import geo
from kgrec.graph import records as rec
from kgrec.graph.memory_rows import NodeKey
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import ATTR_PREFIX, COUNT_KEYS, Label, Rel
from kgrec.graph.store import DISPLAY_PROPERTY, Neighbor, neighbor_order
from kgrec.graph.user_attributes import filled

Located = tuple[int, list[str], np.ndarray, np.ndarray]

#: Which ``counts()`` key each relationship type feeds.
REL_COUNT_KEY = {
    Rel.INTERACTED: "interactions",
    Rel.TAGGED: "taggings",
    Rel.HAS_TAG: "item_tags",
    Rel.FOLLOWS: "follows",
    Rel.RELATED: "facts",
    Rel.DISLIKED: "dislikes",
    Rel.HAS_ATTRIBUTE: "has_attribute",
}
LABEL_COUNT_KEY = {Label.USER: "users", Label.ITEM: "items", Label.TAG: "tags", Label.ATTRIBUTE: "attributes"}


class MemoryReads:
    """The read methods of ``GraphStore`` over ``graph`` and the relationship counts."""

    graph: nx.MultiDiGraph
    _rel_counts: Counter[Rel]
    _hidden_rev: int
    _hidden_cache: tuple[int, frozenset[str]] | None
    _version: int
    _located: Located | None

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

    def _hidden_items(self) -> frozenset[str]:
        cached = self._hidden_cache
        if cached is None or cached[0] != self._hidden_rev:
            nodes = self.graph.nodes(data=True)
            hidden = frozenset(k for (label, k), d in nodes if label is Label.ITEM and d.get("hidden"))
            cached = self._hidden_cache = (self._hidden_rev, hidden)
        return cached[1]

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
                out.users.append(rec.User(key, dict(data["attrs"])))
            elif label is Label.ITEM:
                out.items.append(rec.Item(key, data.get("title"), dict(data["attrs"]), data.get("location")))
            elif label is Label.TAG:
                out.tags.append(rec.Tag(key, data.get("name", key), data.get("kind", "tag")))
            elif label is Label.ATTRIBUTE:
                out.attributes.append(filled(rec.Attribute(key, data.get("kind"), data.get("value"), data.get("name"))))
        nodes = self.graph.nodes
        for (_, src), (_, dst), data in self.graph.edges(data=True):
            rel, p = data["rel"], data["props"]
            if rel is Rel.INTERACTED:
                out.interactions.append(rec.Interaction(src, dst, p["weight"], p.get("rating"), p.get("ts")))
            elif rel is Rel.TAGGED:
                out.taggings.append(rec.Tagging(src, dst, p["tag"], p.get("ts")))
            elif rel is Rel.HAS_TAG:
                out.item_tags.append(rec.ItemTag(src, dst, p["count"]))
            elif rel is Rel.FOLLOWS:
                out.follows.append(rec.Follow(src, dst, p["weight"]))
            elif rel is Rel.RELATED:
                out.facts.append(rec.Fact(src, p["predicate"], dst, nodes[(Label.ENTITY, dst)].get("label")))
            elif rel is Rel.DISLIKED:
                out.dislikes.append(rec.Dislike(src, dst, p.get("ts")))
            elif rel is Rel.HAS_ATTRIBUTE:
                out.has_attribute.append(rec.UserAttribute(src, dst))
        out.hidden = sorted(self._hidden_items())
        return out

    def attributes(self) -> list[rec.Attribute]:
        nodes = self.graph.nodes(data=True)
        found = [filled(rec.Attribute(k, d.get("kind"), d.get("value"), d.get("name")))
                 for (label, k), d in nodes if label is Label.ATTRIBUTE]
        return sorted(found, key=lambda a: a.id)

    def _user_attributes(self, node: NodeKey) -> frozenset[str]:
        succ = self.graph.succ
        return frozenset(dst[1] for dst, edges in succ[node].items() if Rel.HAS_ATTRIBUTE.value in edges)

    def items_within(self, lat: float, lon: float, radius_km: float) -> list[tuple[str, float]]:
        geo.check_query(lat, lon, radius_km)
        cached = self._located
        if cached is None or cached[0] != self._version:
            located = [(k, d["location"]) for (label, k), d in self.graph.nodes(data=True)
                       if label is Label.ITEM and "location" in d]
            ids = [k for k, _ in located]
            lats = np.array([loc[0] for _, loc in located], dtype=np.float64)
            lons = np.array([loc[1] for _, loc in located], dtype=np.float64)
            cached = self._located = (self._version, ids, lats, lons)
        return geo.within(cached[1], cached[2], cached[3], lat, lon, radius_km)
