"""How MemoryStore applies rows: the persisted form of each kind, shared by upserts, by reading
the document and journal, and by other processes' journal lines taken in at ``refresh``.

Nodes are keyed ``(Label, key)``; edge keys carry each relationship type's uniqueness rule
(one INTERACTED per pair, one TAGGED per (user, item, tag), ...), which is what makes every
upsert idempotent. While a write is under way (``MemoryStore._atomic``) every node and edge it
is about to change is first recorded in its ``Undo``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

import networkx as nx

from kgrec.graph.memory_undo import Undo
from kgrec.graph.schema import Label, Rel

NodeKey = tuple[Label, str]


def _opt(props: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Add the present values: like Neo4j, a property is never stored as null."""
    for k, v in values.items():
        if v is not None:
            props[k] = v
    return props


def _interaction(weight: float, rating: float | None, ts: int | None) -> dict[str, Any]:
    props: dict[str, Any] = {"weight": weight}
    return props if rating is None and ts is None else _opt(props, rating=rating, ts=ts)


# Edge keys of the MultiDiGraph: they carry the uniqueness rule of each relationship type.
_INTERACTED, _HAS_TAG, _FOLLOWS = Rel.INTERACTED.value, Rel.HAS_TAG.value, Rel.FOLLOWS.value
_TAGGED, _RELATED, _DISLIKED = Rel.TAGGED.value, Rel.RELATED.value, Rel.DISLIKED.value
_HAS_ATTRIBUTE = Rel.HAS_ATTRIBUTE.value
#: ``_AT[k]`` picks field k of a row (C-level, for the key columns ``_ensure`` takes).
_AT = tuple(itemgetter(k) for k in range(3))


class RowAppliers:
    """The ``_put_<table>`` methods of ``TABLES`` and the primitives they share."""

    graph: nx.MultiDiGraph
    _rel_counts: Counter[Rel]
    _undo: Undo | None
    _hidden_rev: int

    def _ensure(self, label: Label, keys: Iterable[str]) -> None:
        """Create the missing nodes among ``keys`` with only their key (in bulk: it is hot)."""
        graph = self.graph
        known = graph._node
        missing = [k for k in dict.fromkeys(keys) if (label, k) not in known]
        if self._undo is not None:
            for k in missing:
                self._undo.node((label, k))
        if label is Label.ENTITY:
            graph.add_nodes_from(((label, k), {"iri": k}) for k in missing)
        elif label in (Label.TAG, Label.ATTRIBUTE):
            graph.add_nodes_from(((label, k), {"id": k}) for k in missing)
        else:
            graph.add_nodes_from(((label, k), {"id": k, "attrs": {}}) for k in missing)

    def _edges(self, rel: Rel, edges: Iterable[tuple[NodeKey, NodeKey, Any, dict[str, Any]]]) -> None:
        """Upsert relationships whose end nodes exist; an existing key gets the new properties.

        Hot in bulk loads, so it writes what ``MultiDiGraph.add_edge`` writes, directly: the edge's
        data dict under ``succ[src][dst][key]``, the key dict shared with ``pred[dst][src]``, an
        existing edge's data updated in place (about a quarter of ``add_edge``'s cost)."""
        graph = self.graph
        succ, pred = graph._succ, graph._pred
        new = 0
        undo = self._undo
        for src, dst, ekey, props in edges:
            if undo is not None:
                undo.edge(src, dst, ekey)
            out = succ[src]
            keys = out.get(dst)
            if keys is None:
                out[dst] = pred[dst][src] = {ekey: {"rel": rel, "props": props}}
                new += 1
            else:
                data = keys.get(ekey)
                if data is None:
                    keys[ekey] = {"rel": rel, "props": props}
                    new += 1
                else:
                    data["rel"], data["props"] = rel, props
        cache = getattr(graph, "__networkx_cache__", None)
        if cache:
            cache.clear()  # as add_edge does (cached backend conversions of the graph)
        self._rel_counts[rel] += new

    def _remove_node(self, node: NodeKey) -> bool:
        if node not in self.graph:
            return False
        if self._undo is not None:
            self._undo.removing(node)
        for _, _, data in self.graph.in_edges(node, data=True):
            self._rel_counts[data["rel"]] -= 1
        for _, dst, data in self.graph.out_edges(node, data=True):
            if dst != node:  # a self-loop was already counted among the in-edges
                self._rel_counts[data["rel"]] -= 1
        self.graph.remove_node(node)
        if node[0] is Label.ITEM:
            self._hidden_rev += 1
        return True

    # -- rows: the persisted form of each kind, shared by upserts and by reading the file --
    def _saving(self, label: Label, rows: list[Any]) -> None:
        """Let a write's undo remember the nodes whose properties it is about to set."""
        if self._undo is not None:
            for r in rows:
                self._undo.node((label, r[0]))

    def _put_users(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Users with their attributes, replaced whole; their HAS_ATTRIBUTE links go with the old
        attributes (a write of the user's new links follows)."""
        self._saving(Label.USER, rows)
        self._drop_attribute_links([r[0] for r in rows])
        self._ensure(Label.USER, map(_AT[0], rows))
        nodes = self.graph.nodes
        for key, attrs in rows:
            nodes[(Label.USER, key)]["attrs"] = dict(attrs)

    def _drop_attribute_links(self, users: list[str]) -> None:
        succ, undo = self.graph.succ, self._undo
        for key in users:
            node = (Label.USER, key)
            if node not in succ:
                continue
            old = [dst for dst, edges in succ[node].items() if _HAS_ATTRIBUTE in edges]
            for dst in old:
                if undo is not None:
                    undo.edge(node, dst, _HAS_ATTRIBUTE)
                self.graph.remove_edge(node, dst, _HAS_ATTRIBUTE)
            self._rel_counts[Rel.HAS_ATTRIBUTE] -= len(old)

    def _put_items(self, rows: list[tuple[str, str | None, dict[str, Any], Any]]) -> None:
        """Items with title, attributes and location, each replaced (None removes it)."""
        self._saving(Label.ITEM, rows)
        self._ensure(Label.ITEM, map(_AT[0], rows))
        nodes = self.graph.nodes
        for key, title, attrs, location in rows:
            data = nodes[(Label.ITEM, key)]
            data["attrs"] = dict(attrs)
            for name, value in (("title", title), ("location", location)):
                if value is None:
                    data.pop(name, None)
                else:
                    data[name] = value if name == "title" else (float(value[0]), float(value[1]))

    def _put_tags(self, rows: list[tuple[str, str | None, str | None]]) -> None:
        self._saving(Label.TAG, rows)
        self._ensure(Label.TAG, map(_AT[0], rows))
        nodes = self.graph.nodes
        for key, name, kind in rows:
            _opt(nodes[(Label.TAG, key)], name=name, kind=kind)

    def _put_attributes(self, rows: list[tuple[str, str | None, str | None, str | None]]) -> None:
        """Attribute nodes; a missing kind, value or name keeps the one already known (as tags do)."""
        self._saving(Label.ATTRIBUTE, rows)
        self._ensure(Label.ATTRIBUTE, map(_AT[0], rows))
        nodes = self.graph.nodes
        for key, kind, value, name in rows:
            _opt(nodes[(Label.ATTRIBUTE, key)], kind=kind, value=value, name=name)

    def _put_has_attribute(self, rows: list[tuple[str, str]]) -> None:
        self._ensure(Label.USER, map(_AT[0], rows))
        self._ensure(Label.ATTRIBUTE, map(_AT[1], rows))
        self._edges(Rel.HAS_ATTRIBUTE, (
            ((Label.USER, u), (Label.ATTRIBUTE, a), _HAS_ATTRIBUTE, {}) for u, a in rows
        ))

    def _put_entities(self, rows: list[tuple[str, str | None]]) -> None:
        """Entities; a missing label keeps the one already known (as a Fact without a label does)."""
        self._saving(Label.ENTITY, rows)
        self._ensure(Label.ENTITY, map(_AT[0], rows))
        nodes = self.graph.nodes
        for key, label in rows:
            _opt(nodes[(Label.ENTITY, key)], label=label)

    def _put_interacted(self, rows: list[tuple[str, str, float, float | None, int | None]]) -> None:
        self._ensure(Label.USER, map(_AT[0], rows))
        self._ensure(Label.ITEM, map(_AT[1], rows))
        self._edges(Rel.INTERACTED, (
            ((Label.USER, u), (Label.ITEM, i), _INTERACTED, _interaction(w, rating, ts))
            for u, i, w, rating, ts in rows
        ))

    def _put_tagged(self, rows: list[tuple[str, str, str, int | None]]) -> None:
        self._ensure(Label.USER, map(_AT[0], rows))
        self._ensure(Label.ITEM, map(_AT[1], rows))
        self._ensure(Label.TAG, map(_AT[2], rows))
        self._edges(Rel.TAGGED, (
            ((Label.USER, u), (Label.ITEM, i), (_TAGGED, t), {"tag": t} if ts is None else {"tag": t, "ts": ts})
            for u, i, t, ts in rows
        ))

    def _put_has_tag(self, rows: list[tuple[str, str, float]]) -> None:
        self._ensure(Label.ITEM, map(_AT[0], rows))
        self._ensure(Label.TAG, map(_AT[1], rows))
        self._edges(Rel.HAS_TAG, (((Label.ITEM, i), (Label.TAG, t), _HAS_TAG, {"count": c}) for i, t, c in rows))

    def _put_follows(self, rows: list[tuple[str, str, float]]) -> None:
        self._ensure(Label.USER, map(_AT[0], rows))
        self._ensure(Label.USER, map(_AT[1], rows))
        self._edges(Rel.FOLLOWS, (((Label.USER, u), (Label.USER, f), _FOLLOWS, {"weight": w}) for u, f, w in rows))

    def _put_disliked(self, rows: list[tuple[str, str, int | None]]) -> None:
        self._ensure(Label.USER, map(_AT[0], rows))
        self._ensure(Label.ITEM, map(_AT[1], rows))
        self._edges(Rel.DISLIKED, (
            ((Label.USER, u), (Label.ITEM, i), _DISLIKED, {} if ts is None else {"ts": ts}) for u, i, ts in rows
        ))

    def _put_hidden(self, rows: list[tuple[str, bool]]) -> None:
        """Set or clear the flag of items that exist (rows for missing items are never recorded)."""
        nodes = self.graph.nodes
        self._saving(Label.ITEM, [r for r in rows if (Label.ITEM, r[0]) in nodes])
        for key, hidden in rows:
            data = nodes.get((Label.ITEM, key))
            if data is None:
                continue
            if hidden:
                data["hidden"] = True
            else:
                data.pop("hidden", None)
        self._hidden_rev += 1

    def _put_related(self, rows: list[tuple[str, str, str]]) -> None:
        self._ensure(Label.ITEM, map(_AT[0], rows))
        self._ensure(Label.ENTITY, map(_AT[2], rows))
        self._edges(Rel.RELATED, (
            ((Label.ITEM, i), (Label.ENTITY, e), (_RELATED, p), {"predicate": p}) for i, p, e in rows
        ))


#: The method that applies each persisted table's rows (shapes in ``graph.rows.FIELDS``).
TABLES: dict[str, Callable[[RowAppliers, list[Any]], None]] = {
    "users": RowAppliers._put_users,
    "items": RowAppliers._put_items,
    "tags": RowAppliers._put_tags,
    "entities": RowAppliers._put_entities,
    "attributes": RowAppliers._put_attributes,
    "interacted": RowAppliers._put_interacted,
    "tagged": RowAppliers._put_tagged,
    "has_tag": RowAppliers._put_has_tag,
    "follows": RowAppliers._put_follows,
    "related": RowAppliers._put_related,
    "disliked": RowAppliers._put_disliked,
    "hidden": RowAppliers._put_hidden,
    "has_attribute": RowAppliers._put_has_attribute,
}
