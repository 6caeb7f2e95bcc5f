"""Undo for one MemoryStore write: a write that fails half-way leaves no trace in memory.

Rows are checked before a write touches the graph, so applying them should not fail; but a
write that does fail (out of memory, an interrupt, a bug) must not leave half a batch
visible to later reads and flushes. ``Undo`` records the prior state of every node and
relationship a write is about to change, the first time it is touched, and ``rollback``
puts each back. It lives only for the duration of one write.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import networkx as nx

NodeKey = tuple[Any, str]
EdgeKey = tuple[NodeKey, NodeKey, Any]


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """A node's or relationship's data, with its nested dicts (attrs, props) copied too."""
    return {k: dict(v) if type(v) is dict else v for k, v in data.items()}


class Undo:
    """Prior states of what one write touched; ``rollback`` restores them."""

    def __init__(self, graph: nx.MultiDiGraph, rel_counts: Counter[Any]) -> None:
        self.graph = graph
        self.rel_counts = Counter(rel_counts)
        self.nodes: dict[NodeKey, dict[str, Any] | None] = {}
        self.edges: dict[EdgeKey, dict[str, Any] | None] = {}
        self.removed: list[tuple[NodeKey, dict[str, Any], list[tuple[NodeKey, NodeKey, Any, dict[str, Any]]]]] = []

    def node(self, key: NodeKey) -> None:
        """Remember ``key``'s data (or its absence) before the write changes it."""
        if key not in self.nodes:
            data = self.graph.nodes.get(key)
            self.nodes[key] = None if data is None else _copy(data)

    def edge(self, src: NodeKey, dst: NodeKey, ekey: Any) -> None:
        k = (src, dst, ekey)
        if k not in self.edges:
            data = self.graph.get_edge_data(src, dst, ekey)
            self.edges[k] = None if data is None else _copy(data)

    def removing(self, node: NodeKey) -> None:
        """Remember a node about to be removed, with every relationship that goes with it."""
        g = self.graph
        edges = [(s, d, k, _copy(data)) for s, d, k, data in g.in_edges(node, keys=True, data=True)]
        edges += [(s, d, k, _copy(data)) for s, d, k, data in g.out_edges(node, keys=True, data=True) if d != node]
        self.removed.append((node, _copy(g.nodes[node]), edges))

    def rollback(self, rel_counts: Counter[Any]) -> None:
        """Put back every recorded state, newest removal first; ``rel_counts`` is restored in place."""
        g = self.graph
        for node, data, _ in reversed(self.removed):
            g.add_node(node, **data)
        for _, _, edges in reversed(self.removed):
            for s, d, k, data in edges:
                g.add_edge(s, d, k, **data)
        for (s, d, k), data in self.edges.items():
            if data is None:
                if g.has_edge(s, d, k):
                    g.remove_edge(s, d, k)
            else:
                current = g.get_edge_data(s, d, k)
                if current is None:
                    g.add_edge(s, d, k, **data)
                else:
                    current.clear()
                    current.update(data)
        for key, data in self.nodes.items():
            if data is None:
                if key in g:
                    g.remove_node(key)
            elif key in g:
                g.nodes[key].clear()
                g.nodes[key].update(data)
            else:
                g.add_node(key, **data)
        rel_counts.clear()
        rel_counts.update(self.rel_counts)
