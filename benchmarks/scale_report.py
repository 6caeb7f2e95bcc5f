"""Tables, slopes, estimates and the log–log plot of ``benchmarks/scale.py``'s results.

A cost measured at two sizes with ``n1`` and ``n2`` interactions grows as ``n^s`` between
them, ``s = log(c2/c1) / log(n2/n1)``: the *slope per step*. Estimates beyond the measured
sizes fit a fixed cost plus a power law (``growth``) to the largest sizes measured and are
always labelled as estimates.
"""

from __future__ import annotations

import math
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sections import write_section

PLOT = Path(__file__).resolve().parent / "results" / "scale.png"
MACHINE_GB = 24
#: Recommenders whose fit cost should grow at most as interactions^1.3 up to 16×.
LINEAR_ISH = ("graph_walk", "itemcf", "ease")
SLOPE_TARGET = 1.3
DATASETS = ("ml-latest-small", "lastfm-2k")


def synthetic(results: dict[str, Any]) -> list[str]:
    """The synthetic sizes of the results (``4x``…), smallest first."""
    return sorted((s for s in results["runs"] if s.endswith("x")), key=lambda s: float(s[:-1]))


def interactions_of(results: dict[str, Any], size: str) -> int | None:
    counts = results["runs"].get(size, {}).get("counts")
    return int(counts["interactions"]) if counts else None


def relationships_of(counts: dict[str, int]) -> int:
    return sum(counts.get(k, 0) for k in ("interactions", "taggings", "item_tags", "follows", "facts"))


def measured(results: dict[str, Any], step: str, field: str) -> list[tuple[int, float]]:
    """(interactions, value) of a step's field at every synthetic size it ran at."""
    out = []
    for size in synthetic(results):
        got = results["runs"].get(size, {}).get("steps", {}).get(step)
        n = interactions_of(results, size)
        if got and n and field in got and not {"skipped", "killed", "error"} & set(got):
            out.append((n, float(got[field])))
    return sorted(out)


def slope(a: tuple[int, float], b: tuple[int, float]) -> float | None:
    if a[1] <= 0 or b[1] <= 0 or a[0] == b[0]:
        return None
    return math.log(b[1] / a[1]) / math.log(b[0] / a[0])


def growth(points: list[tuple[int, float]]) -> tuple[float, float, float] | None:
    """``(base, c, s)`` with ``value = base + c · n^s`` through the last three points (a fixed
    cost — the interpreter, imports, start-up — plus a power law), or through the last two
    with ``s = 1`` (linear) when there are only two. None for fewer, or for a cost that did
    not grow over the last step (it is then taken as flat)."""
    if len(points) < 2:
        return None
    (n1, r1), (n2, r2) = points[-2], points[-1]
    if r2 <= r1:
        return None
    s = 1.0
    if len(points) >= 3 and r1 > points[-3][1]:
        n0, r0 = points[-3]
        target = (r2 - r1) / (r1 - r0)
        lo, hi = 0.3, 3.0
        for _ in range(60):  # bisection: the ratio of the two steps grows with s
            mid = (lo + hi) / 2
            if (n2**mid - n1**mid) / (n1**mid - n0**mid) < target:
                lo = mid
            else:
                hi = mid
        s = (lo + hi) / 2
    c = (r2 - r1) / (n2**s - n1**s)
    return r2 - c * n2**s, c, s


def estimate(results: dict[str, Any], step: str, field: str, n: int) -> float | None:
    """The field at ``n`` interactions from ``growth`` of the sizes measured below ``n``."""
    points = [p for p in measured(results, step, field) if p[0] < n]
    if not points:
        return None
    g = growth(points)
    if g is None:
        return points[-1][1] if len(points) >= 2 else None
    base, c, s = g
    return base + c * n**s


def fits_in(results: dict[str, Any], step: str, gb: float = MACHINE_GB) -> float | None:
    """Interactions at which the step's peak RSS reaches ``gb`` (by ``growth``)."""
    g = growth(measured(results, step, "peak_rss_mb"))
    if g is None:
        return None
    base, c, s = g
    room = gb * 1024 - base
    return (room / c) ** (1 / s) if room > 0 else 0.0


def _steps(results: dict[str, Any]) -> list[str]:
    names: dict[str, None] = {}
    for run in results["runs"].values():
        names.update(dict.fromkeys(run.get("steps", {})))
    return list(names)


def _cell(step: dict[str, Any] | None, field: str, fmt: str) -> str:
    if not step:
        return "–"
    if "skipped" in step:
        est = step.get("estimated_s") if field in ("wall_s", "fit_s") else step.get("estimated_rss_mb")
        return f"est. {est:{fmt}}" if est is not None and field in ("wall_s", "fit_s", "peak_rss_mb") else "skipped"
    if "killed" in step:
        return "killed"
    if "error" in step:
        return "error"
    return f"{step[field]:{fmt}}" if field in step else "–"


def _sizes(results: dict[str, Any]) -> list[str]:
    return [s for s in DATASETS if s in results["runs"]] + synthetic(results)


def size_table(results: dict[str, Any]) -> list[str]:
    lines = ["| size | users | items | interactions | relationships | load memory s (peak MB) | load Neo4j s "
             "(rel/s) | snapshot memory s | snapshot Neo4j s | serve p50 / p99 ms | serving RSS MB "
             "| batch users/s: local / 1 thread / Ray × 2 | Ray × 2 ÷ 1 thread "
             "| with explanations users/s: 1 thread / Ray × 2 (÷) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in _sizes(results):
        run = results["runs"][size]
        st, c = run.get("steps", {}), run.get("counts", {})
        rels = relationships_of(c) if c else 0
        lm, ln = st.get("load_memory"), st.get("load_neo4j")
        load_mem = (f"{_cell(lm, 'wall_s', '.1f')} ({_cell(lm, 'peak_rss_mb', ',.0f')})" if lm else "–")
        load_neo = "–"
        if ln:
            load_neo = _cell(ln, "wall_s", ".1f")
            if "wall_s" in ln and not {"skipped", "killed", "error"} & set(ln):
                load_neo += f" ({rels / ln['wall_s']:,.0f})"
        snap_mem = _cell(st.get("snapshot_memory"), "snapshot_s", ".1f") if "snapshot_memory" in st else (
            "arrays" if "snapshot_arrays" in st else "–")
        sv, bt = st.get("serve"), st.get("batch")
        serve = f"{sv['p50_ms']:.2f} / {sv['p99_ms']:.2f}" if sv and "p50_ms" in sv else _cell(sv, "p50_ms", ".2f")
        serving_rss = f"{sv['serving_rss_mb']:,.0f}" if sv and "serving_rss_mb" in sv else "–"
        batch, ratio = "–", "–"
        if bt and "ray_users_per_s" in bt:
            batch = (f"{bt['local_users_per_s']:,.0f} / {bt['local_1thread_users_per_s']:,.0f} / "
                     f"{bt['ray_users_per_s']:,.0f}" + ("" if bt.get("identical") else " (outputs differ!)"))
            ratio = f"{bt['ray_users_per_s'] / bt['local_1thread_users_per_s']:.2f}"
        elif bt:
            batch = _cell(bt, "ray_users_per_s", ".0f")
        explain = "–"
        if bt and "explain_ray_users_per_s" in bt:
            one, two = bt["explain_local_1thread_users_per_s"], bt["explain_ray_users_per_s"]
            explain = f"{one:,.0f} / {two:,.0f} ({two / one:.2f})"
        lines.append(f"| {size} | {c.get('users', 0):,} | {c.get('items', 0):,} | {c.get('interactions', 0):,} | "
                     f"{rels:,} | {load_mem} | {load_neo} | {snap_mem} | "
                     f"{_cell(st.get('snapshot_neo4j'), 'snapshot_s', '.1f')} | {serve} | {serving_rss} | {batch} | "
                     f"{ratio} | {explain} |")
    return lines


def fit_table(results: dict[str, Any]) -> list[str]:
    sizes = _sizes(results)
    models = [s.split(":", 1)[1] for s in _steps(results) if s.startswith("fit:")]
    steps = " / ".join(f"{a}→{b}" for a, b in pairwise(synthetic(results)))
    head = "| model | " + " | ".join(f"{s} fit s (peak MB)" for s in sizes) + f" | slope per step ({steps}) |"
    lines = [head, "|---|" + "---:|" * (len(sizes) + 1)]
    for m in models:
        cells = []
        for size in sizes:
            st = results["runs"][size].get("steps", {}).get(f"fit:{m}")
            cells.append(f"{_cell(st, 'fit_s', '.1f')} ({_cell(st, 'peak_rss_mb', ',.0f')})" if st else "–")
        pts = measured(results, f"fit:{m}", "fit_s")
        slopes = [slope(a, b) for a, b in pairwise(pts)]
        lines.append(f"| {m} | " + " | ".join(cells) + " | "
                     + " / ".join("–" if x is None else f"{x:.2f}" for x in slopes) + " |")
    return lines


def capacity_table(results: dict[str, Any]) -> list[str]:
    """Per recommender (and the stores): the largest size that fits in 24 GB, and what dominates."""
    base = interactions_of(results, "1x") or interactions_of(results, "lastfm-2k") or 1
    lines = [f"| what | largest size measured: peak MB | model arrays MB (largest) | fits in {MACHINE_GB} GB up to "
             "(estimate) | at 64× |", "|---|---|---|---|---|"]
    steps = [s for s in _steps(results) if s.startswith("fit:")] + ["load_memory", "serve"]
    for step in steps:
        pts = measured(results, step, "peak_rss_mb")
        if not pts:
            continue
        last_size = next(s for s in reversed(synthetic(results))
                         if (interactions_of(results, s) or -1) == pts[-1][0])
        got = results["runs"][last_size]["steps"][step]
        arrays = "–"
        if "largest_arrays" in got:
            top = ", ".join(f"`{name}` {mb:,.0f}" for name, mb in got["largest_arrays"][:2])
            arrays = f"{got['model_arrays_mb']:,.0f} ({top})"
        elif step == "load_memory":
            arrays = "networkx graph: Python objects per node and relationship"
        elif step == "serve":
            arrays = "every default model's arrays + the snapshot"
        cap = fits_in(results, step)
        cap_text = ("–" if cap is None else "beyond 1,000× (grows too little to extrapolate)" if cap > 1000 * base
                    else f"{cap:,.0f} interactions ≈ {cap / base:,.0f}×")
        at64 = results["runs"].get("64x", {}).get("steps", {}).get(step)
        if at64 and not {"skipped", "killed", "error"} & set(at64):
            at64_text = f"ran: {at64.get('fit_s', at64.get('wall_s', 0)):.0f} s, {at64['peak_rss_mb']:,.0f} MB"
        elif at64 and "skipped" in at64:
            est = at64.get("estimated_rss_mb")
            at64_text = f"not run: {at64['skipped']}" + (f" (≈ {est / 1024:.1f} GB)" if est else "")
        elif at64:
            at64_text = at64.get("killed") or at64.get("error", "")[:80]
        else:
            at64_text = "–"
        label = step.split(":", 1)[1] if step.startswith("fit:") else {"load_memory": "MemoryStore load",
                                                                        "serve": "serving (default bundle)"}[step]
        lines.append(f"| {label} | {last_size}: {got['peak_rss_mb']:,.0f} | {arrays} | {cap_text} | {at64_text} |")
    return lines


def plot(results: dict[str, Any], path: Path = PLOT) -> Path | None:
    from matplotlib import cm
    from matplotlib.figure import Figure

    steps = [s for s in _steps(results) if s.startswith("fit:")] + ["load_memory", "load_neo4j", "snapshot_memory"]
    fig = Figure(figsize=(13, 5.5))
    time_ax, rss_ax = fig.subplots(1, 2)
    drawn = False
    colours = [cm.tab20(i % 20) for i in range(len(steps))]
    largest = synthetic(results)[-1] if synthetic(results) else None
    for k, step in enumerate(steps):
        field = "fit_s" if step.startswith("fit:") else ("snapshot_s" if step.startswith("snapshot") else "wall_s")
        label = step.split(":", 1)[-1]
        style = {"color": colours[k], "linestyle": "-" if k < 10 else "-."}
        for ax, f, est in ((time_ax, field, "estimated_s"), (rss_ax, "peak_rss_mb", "estimated_rss_mb")):
            pts = measured(results, step, f)
            if len(pts) >= 2:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=label, **style)
                drawn = True
                guess = results["runs"].get(largest, {}).get("steps", {}).get(step, {}).get(est)
                n = interactions_of(results, largest) if largest else None
                if guess and n and n > xs[-1]:
                    ax.plot([xs[-1], n], [ys[-1], guess], marker="o", markerfacecolor="none",
                            color=colours[k], linestyle=":")
    for ax, title, unit in ((time_ax, "time", "seconds"), (rss_ax, "peak RSS of the step's process", "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions (synthetic 1×, 4×, 16×, 64× Last.fm 2K)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    rss_ax.axhline(MACHINE_GB * 1024, color="red", linestyle="--", linewidth=1)
    rss_ax.text(rss_ax.get_xlim()[0], MACHINE_GB * 1024 * 1.08, f" {MACHINE_GB} GB", color="red", fontsize=8)
    time_ax.set_title("time (dotted, hollow: estimates for sizes not run)")
    time_ax.legend(fontsize=7, ncol=2)
    if not drawn:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _relative(path: Path) -> str:
    here = Path(__file__).resolve().parent
    return str(path.resolve().relative_to(here)) if path.resolve().is_relative_to(here) else str(path)


def normalised(results: dict[str, Any]) -> dict[str, Any]:
    """Peaks read from VmHWM where a step reported it (older records hold ru_maxrss, which on
    Linux includes the parent's size at fork)."""
    for run in results["runs"].values():
        for st in run.get("steps", {}).values():
            if "vmhwm_mb" in st:
                st["peak_rss_mb"] = st["vmhwm_mb"]
    return results


def write_report(results: dict[str, Any], write_results_md: bool = False, png: Path | None = None) -> str:
    results = normalised(results)
    machine = results.get("machine", {})
    loads = sorted({round(st.get("load_average", 0), 1) for run in results["runs"].values()
                    for st in run.get("steps", {}).values() if "load_average" in st})
    png = plot(results, png or PLOT)
    text = "\n".join([
        f"### Scale (`benchmarks/scale.py`, {time.strftime('%Y-%m-%d')})",
        "",
        f"{machine.get('cpus', '?')} cores, {machine.get('memory_gb', '?')} GB, shared with other work (1-minute load "
        f"average during the steps: {loads[0] if loads else '?'}–{loads[-1] if loads else '?'}; times are upper "
        "bounds). Each step ran in its own process; peak RSS is that process's (the Neo4j server and Ray's worker "
        "processes are not counted). Synthetic sizes come from `loaders/synthetic_scale.py`; `est.` marks an "
        "estimate from the curve, never a measurement.",
        "",
        *size_table(results),
        "",
        "Fit time and peak RSS per recommender (kge: 2 epochs), with the slope per step of fit time against "
        f"interactions (target ≤ {SLOPE_TARGET} up to 16× for {', '.join(LINEAR_ISH)}):",
        "",
        *fit_table(results),
        "",
        f"What fits in this machine's {MACHINE_GB} GB (estimates: a fixed part plus a power law through the three "
        "largest measured sizes, or linear through two):",
        "",
        *capacity_table(results),
        "",
        f"![cost against interactions]({_relative(png)})" if png else "",
    ])
    if write_results_md:
        write_section("scale", text)
    return text
