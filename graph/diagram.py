"""Draw the graph schema (labels, relationship types, their endpoints and properties) as SVG.

The picture is generated from ``graph.schema`` rather than drawn by hand, so the README's
diagram cannot drift from the code: ``python -m graph.diagram docs/schema.svg`` or
``kgrec schema --svg docs/schema.svg``. Plain SVG text, no graphviz needed.
"""

from __future__ import annotations

import math
import sys
from html import escape
from pathlib import Path

from kgrec.graph.schema import ATTR_PREFIX, EMBEDDING_PREFIX, ENDPOINTS, KEY, PROPERTIES, Label, Rel

WIDTH, HEIGHT = 1040, 930
BOX_W, LINE_H = 170, 17

#: Where each label's box is centred; labels added to the schema later go along the bottom.
POSITIONS: dict[Label, tuple[float, float]] = {
    Label.USER: (170, 250),
    Label.ITEM: (560, 250),
    Label.TAG: (900, 250),
    Label.ENTITY: (560, 470),
    Label.STATE: (900, 470),
    Label.ATTRIBUTE: (170, 470),
    Label.IMPRESSION: (365, 700),  # tall (its many properties): below, between its user and its item
}

COLOURS: dict[Label, str] = {
    Label.USER: "#4C8EDA",
    Label.ITEM: "#F79767",
    Label.TAG: "#57C7E3",
    Label.ENTITY: "#8DCC93",
    Label.ATTRIBUTE: "#FFC454",
}


def _positions() -> dict[Label, tuple[float, float]]:
    pos = {lab: POSITIONS[lab] for lab in Label if lab in POSITIONS}
    extra = [lab for lab in Label if lab not in POSITIONS]
    for n, lab in enumerate(extra, 1):
        pos[lab] = (WIDTH * n / (len(extra) + 1), HEIGHT - 40)
    return pos


def _box_height(lab: Label) -> float:
    return LINE_H * (2 + len(PROPERTIES.get(lab, ()))) + 8


def _node(lab: Label, x: float, y: float) -> str:
    h = _box_height(lab)
    top = y - h / 2
    colour = COLOURS.get(lab, "#C990C0")
    lines = [
        f'<g class="node" data-label="{escape(lab.value)}">',
        f'<rect x="{x - BOX_W / 2:.1f}" y="{top:.1f}" width="{BOX_W}" height="{h:.1f}" rx="10" '
        f'fill="{colour}" fill-opacity="0.18" stroke="{colour}" stroke-width="2"/>',
        f'<text x="{x:.1f}" y="{top + LINE_H + 2:.1f}" text-anchor="middle" font-weight="bold" '
        f'font-size="15">:{escape(lab.value)}</text>',
    ]
    key = KEY.get(lab)
    for n, prop in enumerate(PROPERTIES.get(lab, ())):
        mark = " (key)" if prop == key else ""
        lines.append(
            f'<text x="{x:.1f}" y="{top + LINE_H * (n + 2) + 4:.1f}" text-anchor="middle" '
            f'font-size="12">{escape(prop)}{mark}</text>'
        )
    lines.append("</g>")
    return "\n".join(lines)


def _edge_label(rel: Rel, x: float, y: float) -> str:
    props = ", ".join(PROPERTIES.get(rel, ()))
    text = f":{rel.value}" + (f" {{{props}}}" if props else "")
    return (
        f'<text class="rel" data-type="{escape(rel.value)}" x="{x:.1f}" y="{y:.1f}" text-anchor="middle" '
        f'font-size="12" paint-order="stroke" stroke="white" stroke-width="4">{escape(text)}</text>'
    )


def _border_point(lab: Label, cx: float, cy: float, tx: float, ty: float) -> tuple[float, float]:
    """Where the line from a box's centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    hw, hh = BOX_W / 2 + 4, _box_height(lab) / 2 + 4
    scale = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale


def render_svg() -> str:
    """The whole schema as one SVG document."""
    pos = _positions()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif">',
        "<title>kgrec graph schema (generated from graph/schema.py)</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    pairs: dict[tuple[Label, Label], list[Rel]] = {}
    for rel in Rel:
        pairs.setdefault(ENDPOINTS[rel], []).append(rel)
    for (src, dst), rels in pairs.items():
        (sx, sy), (tx, ty) = pos[src], pos[dst]
        for n, rel in enumerate(rels):
            if src == dst:
                top = sy - _box_height(src) / 2
                r = 40 + 22 * n
                path = f"M{sx - 40:.1f},{top:.1f} C{sx - 70:.1f},{top - 2 * r:.1f} {sx + 70:.1f},{top - 2 * r:.1f} "
                path += f"{sx + 40:.1f},{top:.1f}"
                lx, ly = sx, top - 1.5 * r - 4
            else:
                offset = (n - (len(rels) - 1) / 2) * 110
                mx, my = (sx + tx) / 2, (sy + ty) / 2
                length = math.hypot(tx - sx, ty - sy)
                nx, ny = -(ty - sy) / length, (tx - sx) / length
                cx, cy = mx + nx * offset * 2, my + ny * offset * 2
                ax, ay = _border_point(src, sx, sy, cx, cy)
                bx, by = _border_point(dst, tx, ty, cx, cy)
                path = f"M{ax:.1f},{ay:.1f} Q{cx:.1f},{cy:.1f} {bx:.1f},{by:.1f}"
                lx = 0.25 * ax + 0.5 * cx + 0.25 * bx
                ly = 0.25 * ay + 0.5 * cy + 0.25 * by + (math.copysign(16, ny * offset) if offset else -14) + 4
            parts.append(
                f'<path d="{path}" fill="none" stroke="#555" stroke-width="1.6" marker-end="url(#arrow)"/>'
            )
            parts.append(_edge_label(rel, lx, ly))
    for lab in Label:
        x, y = pos[lab]
        parts.append(_node(lab, x, y))
    note = (
        f"Users and items may also carry free-form attributes ({ATTR_PREFIX}<name>) and "
        f"written-back embeddings ({EMBEDDING_PREFIX}<model>)."
    )
    parts.append(f'<text x="20" y="{HEIGHT - 14}" font-size="12" fill="#444">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_svg(path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_svg(), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(write_svg(sys.argv[1] if len(sys.argv) > 1 else "docs/schema.svg"))
