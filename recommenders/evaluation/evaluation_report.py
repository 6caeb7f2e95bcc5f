"""Render an ``Evaluation`` as a terminal table, markdown, JSON or a PNG bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from kgrec.recommenders.evaluation.offline_evaluation import Evaluation
from kgrec.recommenders.evaluation.ranking_metrics import ACCURACY


def _cell(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _rows(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    names = ev.metric_names()
    header = ["model", *names, "fit s", "ms/user"]
    rows = [
        [r.name, *(_cell(r.metrics.get(m)) for m in names), f"{r.fit_seconds:.2f}", f"{r.recommend_ms:.2f}"]
        for r in ev.results
    ]
    return header, rows


def _caption(ev: Evaluation) -> str:
    text = f"split={ev.split} seed={ev.seed} k={ev.k} users={ev.users} held-out={ev.held_out}"
    return text + "".join(f"; {n}" for n in ev.notes)


def to_table(ev: Evaluation) -> str:
    """A fixed-width table for the terminal."""
    header, rows = _rows(ev)
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in pairs)

    return "\n".join([_caption(ev), line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def to_markdown(ev: Evaluation) -> str:
    header, rows = _rows(ev)
    lines = [f"| {' | '.join(header)} |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines) + f"\n\n{_caption(ev)}\n"


def to_json(ev: Evaluation) -> str:
    return json.dumps(ev.to_dict(), indent=2)


def save_plot(ev: Evaluation, path: str | Path) -> None:
    """Grouped bars: accuracy metrics@k (left) and beyond-accuracy metrics (right).

    Uses matplotlib's object API (``Figure``), which renders with Agg and touches no
    global pyplot state, so it works headless and inside a server.
    """
    import numpy as np
    from matplotlib.figure import Figure

    acc = [f"{m}@{ev.k}" for m in ACCURACY]
    beyond = ["coverage", "diversity", "personalisation"]
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[2, 1])
    width = 0.8 / max(1, len(ev.results))
    for ax, names, title in ((axes[0], acc, f"accuracy @{ev.k}"), (axes[1], beyond, "beyond accuracy")):
        x = np.arange(len(names))
        for j, r in enumerate(ev.results):
            vals = [r.metrics.get(m) for m in names]
            ax.bar(x + j * width, [0.0 if v is None else v for v in vals], width, label=r.name)
        ax.set_xticks(x + width * (len(ev.results) - 1) / 2, names)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small", ncols=2)
    fig.suptitle(_caption(ev), fontsize="small")
    fig.savefig(Path(path), dpi=110)
