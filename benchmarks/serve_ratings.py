"""Serving benchmark, ratings scenario: ``GET /v1/users/{id}/ratings`` for 10 items under wrk.

The machinery of ``benchmarks/serve.py`` (``kgrec serve`` with gunicorn, wrk on loopback) on an
ml-latest-small bundle (graph_walk, svdpp and popularity, trained here once and cached under
``data/bench/``): every request asks one user (in rotation) for 10 items drawn at random from the
catalogue (seeded), each answered with its explanation. A short saturating run first (the
ceiling), then a paced run at about 200 req/s (each connection pauses between requests), whose
percentiles are the service time, and ``/v1/health`` paced the same (what the machine and the HTTP
layer cost at that moment: on a shared machine the load decides the tail); also the read path alone
in one process (no HTTP, no JSON).
Writes under ``<!-- section:serve-ratings -->`` in RESULTS.md.

    PYTHONPATH=. .venv/bin/python benchmarks/serve_ratings.py [--datasets DIR] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sections import write_section
from serve import ROOT, ensure_wrk, free_port, run_wrk, start_server, wait_until_store_reachable, worker_rss_mb
from wrk_paths import paths_script, stop_server

#: Offered rate of the paced run and the latency target there (the issue's).
RATE, P99_MS, ITEMS = 200.0, 30.0, 10


def build_bundle(datasets: Path, out: Path) -> Path:
    """graph_walk (``kgrec serve --model``'s default here), svdpp and popularity on ml-latest-small, once."""
    from kgrec.graph.snapshot import build_snapshot
    from kgrec.loaders import movielens
    from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle

    if (out / "manifest.json").is_file():
        try:
            Bundle.load(out)
            return out
        except (ValueError, KeyError, FileNotFoundError) as exc:
            print(f"cached bundle unusable ({exc}); retraining", file=sys.stderr)
    snapshot = build_snapshot(movielens.load(datasets / "ml-latest-small").records)
    save_bundle(out, snapshot, fit_models(snapshot, ["graph_walk", "svdpp", "popularity"]), overwrite=True)
    return out


def request_paths(users: list[str], items: list[str], n: int = 2000, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"/v1/users/{users[k % len(users)]}/ratings?items=" + ",".join(rng.choice(items, ITEMS, replace=False))
            for k in range(n)]


def in_process_ms(bundle: Path, paths: list[str]) -> dict[str, float]:
    """``recommenders.serving.ratings.predict`` with explanations, one request at a time."""
    from kgrec.recommenders.serving import ratings
    from kgrec.recommenders.serving.server_loading import load_server

    server = load_server(bundle)
    times = []
    for path in paths[:500]:
        user = path.split("/")[3]
        items = path.split("items=")[1].split(",")
        started = time.perf_counter()
        ratings.predict(server, [(user, i) for i in items], limit=3)
        times.append(1000 * (time.perf_counter() - started))
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/shared/datasets")))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--cache", type=Path, default=ROOT / "data" / "bench" / "ml-ratings-bundle")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    wrk = ensure_wrk()
    bundle = build_bundle(args.datasets, args.cache)
    meta = json.loads((bundle / "snapshot" / "snapshot.json").read_text(encoding="utf-8"))
    paths = request_paths(meta["users"], meta["items"])
    tmp = Path(tempfile.mkdtemp(prefix="kgrec-serve-ratings-"))
    load_before = os.getloadavg()[0]
    port = free_port()
    proc = start_server(bundle, f"memory://{tmp / 'store'}", port, args.workers, args.threads)
    base = f"http://127.0.0.1:{port}"
    runs: dict[str, dict] = {}
    try:
        wait_until_store_reachable(base)
        health = ["/v1/health"] * 10
        pause = round(args.connections * 1000 / RATE)
        for name, which, wait in (("saturating", paths, 0), ("paced", paths, None), ("health", health, None)):
            if wait is None:  # each connection waits so that, with the answer's own time, it offers RATE
                wait = max(0, pause - round(runs["saturating"]["p50"]))
            script = paths_script(tmp / f"{name}.lua", which, wait)
            run_wrk(wrk, base + "/", 5, args.connections, script)  # warm-up
            runs[name] = run_wrk(wrk, base + "/", args.seconds, args.connections, script)
            print(name, runs[name], file=sys.stderr)
        rss = worker_rss_mb(proc.pid)
        load_after = os.getloadavg()[0]
    finally:
        stop_server(proc)
    alone = in_process_ms(bundle, paths)
    paced = runs["paced"]
    met = paced["p99"] <= P99_MS and paced["rps"] >= 0.9 * RATE and paced["errors"] == 0
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, shared by server, wrk and other work; 1-minute load average {load_before:.1f} "
        f"before, {load_after:.1f} after). `kgrec serve`, {args.workers} workers × {args.threads} threads, "
        f"ml-latest-small bundle (graph_walk, svdpp, popularity); each request: one user in rotation, "
        f"{ITEMS} random items, with explanations; wrk -t2 -c{args.connections}, {args.seconds} s per run "
        "after a 5 s warm-up.",
        "",
        "| run | requests | req/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {label} | {r['requests']:,} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | "
          f"{r['errors']} |" for label, r in (("saturating", runs["saturating"]),
                                              (f"paced, about {RATE:.0f} req/s", paced),
                                              ("`/v1/health`, paced the same (this machine's floor now)",
                                               runs["health"]))),
        "",
        f"- p99 {paced['p99']:.1f} ms at {paced['rps']:.0f} req/s (target ≤ {P99_MS:.0f} ms at 200 req/s): "
        + ("met" if met else "**missed**") + f"; worker RSS {', '.join(f'{x:.0f} MB' for x in rss)}.",
        f"- The read path alone (`ratings.predict`, {ITEMS} items with explanations, one process): "
        f"p50 {alone['p50']:.2f} ms, p99 {alone['p99']:.2f} ms.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("serve-ratings", text)


if __name__ == "__main__":
    main()
