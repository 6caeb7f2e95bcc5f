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


class RowAppliers:
    """The ``_put_<table>`` methods of ``TABLES`` and the primitives they share."""

    graph: nx.MultiDiGraph
    _rel_counts: Counter[Rel]
    _undo: Undo | None
    _hidden_rev: int

    def _ensure(self, label: Label, keys: Iterable[str]) -> None:
        """Create the missing nodes among ``keys`` with only their key (in bulk: it is hot)."""
        graph = self.graph
        missing = [k for k in dict.fromkeys(keys) if (label, k) not in graph]
        if self._undo is not None:
            for k in missing:
                self._undo.node((label, k))
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
        undo = self._undo
        for src, dst, ekey, props in edges:
            if undo is not None:
                undo.edge(src, dst, ekey)
            if not has(src, dst, ekey):
                new += 1
            add(src, dst, ekey, rel=rel, props=props)
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
        self._saving(Label.USER, rows)
        self._ensure(Label.USER, (r[0] for r in rows))
        nodes = self.graph.nodes
        for key, attrs in rows:
            nodes[(Label.USER, key)]["attrs"] = dict(attrs)

    def _put_items(self, rows: list[tuple[str, str | None, dict[str, Any]]]) -> None:
        self._saving(Label.ITEM, rows)
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
        self._saving(Label.TAG, rows)
        self._ensure(Label.TAG, (r[0] for r in rows))
        nodes = self.graph.nodes
        for key, name, kind in rows:
            _opt(nodes[(Label.TAG, key)], name=name, kind=kind)

    def _put_entities(self, rows: list[tuple[str, str | None]]) -> None:
        """Entities; a missing label keeps the one already known (as a Fact without a label does)."""
        self._saving(Label.ENTITY, rows)
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

    def _put_disliked(self, rows: list[tuple[str, str, int | None]]) -> None:
        self._ensure(Label.USER, (r[0] for r in rows))
        self._ensure(Label.ITEM, (r[1] for r in rows))
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
        self._ensure(Label.ITEM, (r[0] for r in rows))
        self._ensure(Label.ENTITY, (r[2] for r in rows))
        self._edges(Rel.RELATED, (
            ((Label.ITEM, i), (Label.ENTITY, e), (_RELATED, p), {"predicate": p}) for i, p, e in rows
        ))


#: The method that applies each persisted table's rows (shapes in ``graph.rows.FIELDS``).
TABLES: dict[str, Callable[[RowAppliers, list[Any]], None]] = {
    "users": RowAppliers._put_users,
    "items": RowAppliers._put_items,
    "tags": RowAppliers._put_tags,
    "entities": RowAppliers._put_entities,
    "interacted": RowAppliers._put_interacted,
    "tagged": RowAppliers._put_tagged,
    "has_tag": RowAppliers._put_has_tag,
    "follows": RowAppliers._put_follows,
    "related": RowAppliers._put_related,
    "disliked": RowAppliers._put_disliked,
    "hidden": RowAppliers._put_hidden,
}
