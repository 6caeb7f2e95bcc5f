"""What logging impressions costs a recommendation request: ``kgrec serve`` (gunicorn, 2 workers) under
wrk paced at about 500 req/s, with ``KGREC_IMPRESSIONS`` off and on, alternated run by run.

The machinery is ``benchmarks/serve.py``'s (Last.fm 2K bundle of graph_walk + popularity, a
MemoryStore, wrk on loopback, every user in turn, k = 10). Each pair of runs starts two fresh
servers on fresh copies of the store; on the ``on`` side every list is logged (one impression per
item, the pool on the first) and /metrics is read afterwards for what was logged, dropped or failed.
The overhead reported is the median over pairs of p99(on) - p99(off), with each pair's numbers.

    python benchmarks/impression_overhead.py [--pairs 3] [--seconds 30] [--rate 500] [--neo4j bolt://…]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve import (  # noqa: E402
    LUA,
    build_bundle,
    build_store,
    ensure_wrk,
    free_port,
    run_wrk,
    start_server,
    wait_until_store_reachable,
)

DROP_IMPRESSIONS = "MATCH (m:Impression) WITH m LIMIT 20000 DETACH DELETE m RETURN count(*) AS n"


def metrics(base: str) -> dict[str, float]:
    with urlopen(f"{base}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for outcome in ("logged", "dropped", "failed"):
        m = re.search(rf'^kgrec_impressions_total\{{outcome="{outcome}"\}} ([\d.e+]+)$', text, re.M)
        out[outcome] = float(m.group(1)) if m else 0.0
    return out


def one_run(wrk: str, bundle: Path, store_src: Path | None, store_url: str | None, logging: bool, seconds: int,
            connections: int, rate: float, users: list[str], tmp: Path) -> dict:
    if store_src is not None:
        copy = tmp / f"store-{time.monotonic_ns()}"
        shutil.copytree(store_src, copy)
        url = f"memory://{copy}"
    else:
        url = store_url or ""
        from kgrec.graph.store_factory import open_store

        with open_store(url) as st:  # an empty log on each run: drop the impressions of the last
            while st.run_write(DROP_IMPRESSIONS, {})[0]["n"]:  # type: ignore[attr-defined]
                pass
    os.environ["KGREC_IMPRESSIONS"] = "on" if logging else "off"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / f"prom-{time.monotonic_ns()}")
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    port = free_port()
    proc = start_server(bundle, url, port, workers=2, threads=4)
    base = f"http://127.0.0.1:{port}"
    try:
        script = tmp / "paced.lua"
        pause = round(connections * 1000 / rate)
        script.write_text(LUA % (", ".join(f'"{u}"' for u in users), "", pause), encoding="utf-8")
        wait_until_store_reachable(base)  # every worker opened the store (the first request waits for it)
        run_wrk(wrk, base + "/", 10, connections, script)  # warm-up
        got = run_wrk(wrk, base + "/", seconds, connections, script)
        time.sleep(1.0)
        got["impressions"] = metrics(base)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if store_src is not None:
            shutil.rmtree(copy, ignore_errors=True)
    got["logging"] = logging
    got["load"] = round(os.getloadavg()[0], 1)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/shared/datasets")))
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=float, default=500.0, help="offered requests per second")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--neo4j", help="measure on this Neo4j (Last.fm is loaded into it) instead of a MemoryStore")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "impression_overhead.json")
    a = ap.parse_args()
    wrk = ensure_wrk()
    cache = ROOT / "data" / "bench"
    bundle = build_bundle(a.datasets, cache / "bundle-lastfm")
    store_src: Path | None = None
    store_url: str | None = None
    if a.neo4j:
        from serve import load_neo4j

        store_url = load_neo4j(a.datasets, a.neo4j)
    else:
        store_src = Path(build_store(a.datasets, cache / "store-lastfm").removeprefix("memory://"))
    from kgrec.graph.snapshot import GraphSnapshot

    users = list(GraphSnapshot.load(bundle / "snapshot").users.ids)
    runs = []
    with tempfile.TemporaryDirectory(prefix="kgrec-imp-bench-") as tmp:
        for n in range(a.pairs):
            for logging in ((False, True) if n % 2 == 0 else (True, False)):
                r = one_run(wrk, bundle, store_src, store_url, logging, a.seconds, a.connections, a.rate, users,
                            Path(tmp))
                print(json.dumps(r), flush=True)
                runs.append(r)
    pairs = [(runs[2 * n], runs[2 * n + 1]) for n in range(a.pairs)]
    deltas = [(on["p99"] - off["p99"]) for a_, b_ in pairs
              for off, on in [(a_, b_) if not a_["logging"] else (b_, a_)]]
    summary = {"store": "neo4j" if a.neo4j else "memory", "rate_offered": a.rate, "seconds": a.seconds,
               "runs": runs, "p99_delta_ms": deltas, "p99_delta_median_ms": statistics.median(deltas),
               "p99_off_median_ms": statistics.median(r["p99"] for r in runs if not r["logging"]),
               "p99_on_median_ms": statistics.median(r["p99"] for r in runs if r["logging"])}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
