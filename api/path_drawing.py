"""Lay out a reason's path as a left-to-right chain of labelled nodes for an inline SVG.

Only coordinates and strings are computed here; ``templates/_path.svg.html`` draws them,
and Jinja escapes every name, so ids that look like markup stay text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kgrec.recommenders.base import Reason

NODE_W, NODE_H, GAP, PAD, TOP = 132, 40, 84, 8, 26
MAX_CHARS = 17


@dataclass(frozen=True)
class DrawnNode:
    x: float
    y: float
    label: str
    name: str
    short: str
    css: str


@dataclass(frozen=True)
class DrawnEdge:
    x1: float
    x2: float
    y: float
    type: str
    forward: bool


@dataclass(frozen=True)
class Drawing:
    width: float
    height: float
    nodes: tuple[DrawnNode, ...]
    edges: tuple[DrawnEdge, ...]


def layout(reason: Reason) -> Drawing:
    """Nodes in path order, edges between neighbours; arrows follow each relationship's direction."""
    nodes = []
    for n, node in enumerate(reason.nodes):
        name = node.name or node.id
        short = name if len(name) <= MAX_CHARS else name[: MAX_CHARS - 1] + "…"
        nodes.append(DrawnNode(PAD + n * (NODE_W + GAP), TOP, node.label.value, name, short,
                               node.label.value.lower()))
    edges = [
        DrawnEdge(nodes[n].x + NODE_W, nodes[n + 1].x, TOP + NODE_H / 2, rel.type.value, rel.forward)
        for n, rel in enumerate(reason.rels)
    ]
    width = PAD * 2 + len(nodes) * NODE_W + max(0, len(nodes) - 1) * GAP
    return Drawing(width, TOP + NODE_H + PAD, tuple(nodes), tuple(edges))


def cypher_snippet(reason: Reason) -> str:
    """The reason's query with ``:param`` lines first, ready to paste into Neo4j Browser or cypher-shell."""
    lines = [f":param {k} => {json.dumps(v, ensure_ascii=False)}" for k, v in reason.params.items()]
    return "\n".join([*lines, reason.cypher])
