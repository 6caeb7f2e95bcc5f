"""Lay out a reason's path as a left-to-right chain of labelled nodes for an inline SVG.

Only coordinates and strings are computed here; ``templates/_path.svg.html`` draws them,
and Jinja escapes every name, so ids that look like markup stay text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Derived, Reason

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


# -- a small map of the user's places and a recommended place (no tile server) ----------------
MAP_W, MAP_H, MAP_PAD = 320, 220, 14
KM_PER_DEG = 111.19508


@dataclass(frozen=True)
class MapDot:
    x: float
    y: float
    r: float
    title: str


@dataclass(frozen=True)
class PlaceMap:
    """Pixel positions of the user's places (``dots``) around a recommended place (``target``), the
    segment from the visited place a reason names to it (``link``, with its distance) and a scale
    bar; ``elsewhere`` counts the user's places outside the drawn square."""

    width: int
    height: int
    dots: tuple[MapDot, ...]
    target: MapDot
    link: tuple[float, float, float, float, str] | None
    scale: tuple[float, float, float, str]
    elsewhere: int


def _km_text(km: float) -> str:
    return f"{km * 1000:.0f} m" if km < 1 else f"{km:.1f} km"


def place_map(places: list[tuple[float, float, float, str]], target: tuple[float, float, str],
              named: tuple[float, float] | None) -> PlaceMap | None:
    """An equirectangular map centred on ``target`` (lat, lon, title) of the user's ``places``
    (lat, lon, check-ins, title), wide enough to show the place a reason names (``named``, lat and
    lon) and the user's closer places; None without any place to show."""
    if not places:
        return None
    lat0, lon0, title = target
    cos0 = math.cos(math.radians(lat0))

    def km_xy(lat: float, lon: float) -> tuple[float, float]:
        return (lon - lon0) * cos0 * KM_PER_DEG, (lat0 - lat) * KM_PER_DEG

    xy = [km_xy(lat, lon) for lat, lon, _, _ in places]
    dist = sorted(math.hypot(x, y) for x, y in xy)
    reach = math.hypot(*km_xy(*named)) if named is not None else dist[0]
    half = max(1.6 * reach, dist[min(len(dist) - 1, 4)] * 1.1, 0.3)  # the named place and a few more
    scale = (min(MAP_W, MAP_H) / 2 - MAP_PAD) / half  # px per km
    cx, cy = MAP_W / 2, MAP_H / 2
    heaviest = max(w for _, _, w, _ in places) or 1.0
    dots, outside = [], 0
    for (x, y), (_, _, w, name) in zip(xy, places, strict=True):
        px, py = cx + x * scale, cy + y * scale
        if not (MAP_PAD / 2 <= px <= MAP_W - MAP_PAD / 2 and MAP_PAD / 2 <= py <= MAP_H - MAP_PAD / 2):
            outside += 1
            continue
        dots.append(MapDot(px, py, 3.0 + 4.0 * math.sqrt(w / heaviest), f"{name} ({w:g} check-ins)"))
    link = None
    if named is not None:
        x, y = km_xy(*named)
        link = (cx + x * scale, cy + y * scale, cx, cy, _km_text(math.hypot(x, y)))
    bar_km = 10 ** math.floor(math.log10(half))
    bar_km *= 5 if half / bar_km >= 5 else 2 if half / bar_km >= 2 else 1
    bar = (MAP_PAD, MAP_PAD + bar_km * scale, MAP_H - MAP_PAD / 2, _km_text(bar_km))
    return PlaceMap(MAP_W, MAP_H, tuple(dots), MapDot(cx, cy, 6.0, title), link, bar, outside)


def served_map(snapshot: GraphSnapshot, history: Mapping[str, float], served: Any) -> PlaceMap | None:
    """The map for one served item, when one of its reasons walks a NEAR hop (a place near one the
    user or a friend visited): the user's located places (``history``: item id -> check-ins)
    around the item, with the reason's visited place linked to it; None otherwise."""
    near = next((r for r in served.reasons or () if r.rels and r.rels[-1].type is Derived.NEAR), None)
    i = snapshot.items.get(served.item)
    lat, lon = snapshot.item_lat, snapshot.item_lon
    if near is None or i is None or lat is None or lon is None or not math.isfinite(lat[i]):
        return None
    mine = [(snapshot.items.index[j], w) for j, w in history.items() if j in snapshot.items]
    places = [(float(lat[j]), float(lon[j]), w, snapshot.title(j)) for j, w in mine if math.isfinite(lat[j])]
    j = snapshot.items.get(near.nodes[-2].id)
    named = (float(lat[j]), float(lon[j])) if j is not None and math.isfinite(lat[j]) else None
    return place_map(places, (float(lat[i]), float(lon[i]), snapshot.title(i)), named)
