"""``q=`` under load: the recommendation request with a free-text query, against the plain request.

``benchmarks/serve.py``'s setup (the Last.fm 2K bundle, graph_walk + popularity, cached under
``data/bench/``; the Last.fm graph in a MemoryStore; ``kgrec serve``, 2 workers), k = 10, users in
rotation. Each request of the query run carries two words drawn (seeded) from the names of the
graph's 200 most used tags, so most queries match hundreds of artists. wrk paces every connection
so that the offered rate is ``--rps`` (below saturation: the percentiles are service time); the
plain request runs the same way in the same session, for comparison. Prints the numbers and a
markdown table.

    python benchmarks/serve_query.py [--rps 200] [--seconds 60] [--explain]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serve import (  # noqa: E402
    build_bundle,
    build_store,
    ensure_wrk,
    free_port,
    run_wrk,
    start_server,
    wait_until_store_reachable,
)
from benchmarks.wrk_paths import paths_script, stop_server  # noqa: E402


def queries(bundle: Path, n: int, seed: int) -> list[str]:
    """``n`` two-word queries (``&q=a+b``) from the names of the most used tags."""
    import numpy as np

    from kgrec.graph.snapshot import GraphSnapshot
    from kgrec.recommenders.serving.text_query import words

    snap = GraphSnapshot.load(bundle / "snapshot")
    use = np.asarray(snap.item_tags.sum(axis=0)).ravel()
    vocab = sorted({w for t in np.argsort(-use)[:200].tolist() for w in words(snap.tag_names[t])})
    rng = np.random.default_rng(seed)
    return [f"&q={quote(' '.join(rng.choice(vocab, 2, replace=False)))}" for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("KGREC_DATASETS", ROOT.parent / "shared"
                                                                          / "datasets")))
    ap.add_argument("--cache", type=Path, default=ROOT / "data" / "bench" / "lastfm-bundle")
    ap.add_argument("--rps", type=float, default=200.0, help="offered rate over all connections")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--explain", action="store_true", help="ask for reasons too")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    wrk = ensure_wrk()
    bundle = build_bundle(args.datasets, args.cache)
    store = build_store(args.datasets, args.cache.parent / "lastfm-store")
    users = json.loads((bundle / "snapshot" / "snapshot.json").read_text(encoding="utf-8"))["users"]
    asked = queries(bundle, 997, args.seed)  # a prime, so users and queries do not pair up
    extra = "&explain=true" if args.explain else ""
    port = free_port()
    load_before = os.getloadavg()[0]
    proc = start_server(bundle, store, port, args.workers, args.threads)
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="kgrec-q-bench-"))
    runs = {}
    try:  # the server is stopped whatever happens, even when it never became reachable
        wait_until_store_reachable(base)
        for name, qs in (("plain", [""]), ("q", asked)):
            pause = round(args.connections * 1000 / args.rps)
            paths = [f"/v1/users/{users[n % len(users)]}/recommendations?k=10&model=graph_walk"
                     f"{qs[n % len(qs)]}{extra}" for n in range(len(users) * len(qs))]
            for label, wait, seconds in (("warm", 0, 10), (name, pause, args.seconds)):
                script = paths_script(tmp / f"{label}.lua", paths, wait)
                result = run_wrk(wrk, base + "/", seconds, args.connections, script)
            runs[name] = result
            print(name, result, file=sys.stderr)
    finally:
        stop_server(proc)
    load_after = os.getloadavg()[0]
    print(json.dumps({"runs": runs, "load": [load_before, load_after], "offered_rps": args.rps,
                      "explain": args.explain}))
    print(f"\n`kgrec serve`, {args.workers} workers × {args.threads} threads, Last.fm 2K bundle, graph_walk, k = 10, "
          f"{'with' if args.explain else 'without'} explanations, paced at {args.rps:.0f} req/s offered, "
          f"{args.seconds} s per run after a 10 s warm-up; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"1-minute load average {load_before:.1f} → {load_after:.1f}.\n")
    print("| request | requests | req/s | p50 ms | p90 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, r in runs.items():
        label = "plain" if name == "plain" else "with q= (two tag words)"
        print(f"| {label} | {r['requests']:,} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | "
              f"{r['errors']} |")


if __name__ == "__main__":
    main()
