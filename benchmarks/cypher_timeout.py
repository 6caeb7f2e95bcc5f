"""Wall time of ``POST /v1/cypher`` against its timeout, planning included, on a real Neo4j.

Two kinds of expensive query under timeouts of 1, 2, 5 and 10 s: one the planner chews on (a
50,000-character ``MATCH (n:User) WHERE n.id = 'a0' OR ... RETURN n.id``; ``EXPLAIN`` used to
run without any timeout: 41.6 s under a 10 s timeout) and one that runs long (a two-billion-row
``UNWIND`` counted). Target: the answer (504) never comes more than 1 s after the timeout.
Through the real app (Flask's test client, in process) against the Neo4j at ``--uri``, whose
graph is replaced by a small synthetic one.

    PYTHONPATH=. python benchmarks/cypher_timeout.py --uri bolt://127.0.0.1:7687 [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "cypher_timeout.json"
KEY = "bench-analyst-key-123"
QUERIES = {
    "planning (50,000-char WHERE ... OR ...)":
        "MATCH (n:User) WHERE " + " OR ".join(f"n.id = 'a{i}'" for i in range(2850)) + " RETURN n.id AS id",
    "running (2e9-row UNWIND)": "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 1000003 = -1 RETURN count(x) AS n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("KGREC_NEO4J_URI", "bolt://127.0.0.1:7687"))
    parser.add_argument("--timeouts", default="1,2,5,10")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings
    from kgrec.graph.snapshot import build_snapshot
    from kgrec.graph.store_factory import open_store
    from kgrec.loaders.synthetic import generate
    from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle

    graph = generate(users=50, items=80, seed=2)
    with open_store(args.uri) as store:
        store.clear()
        store.load(graph.records)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kgrec-cypher-timeout-") as tmp:
        snap = build_snapshot(graph.records)
        bundle = save_bundle(Path(tmp) / "bundle", snap, fit_models(snap, ["popularity"], seed=1))
        client = create_app(Settings(bundle=str(bundle), store=args.uri, analyst_key=KEY)).test_client()
        client.post("/v1/cypher", json={"query": "RETURN 1 AS one"}, headers={"Authorization": f"Bearer {KEY}"})
        for name, query in QUERIES.items():
            for timeout in (float(t) for t in args.timeouts.split(",")):
                walls, statuses = [], []
                for _ in range(args.reps):
                    started = time.perf_counter()
                    resp = client.post("/v1/cypher", json={"query": query, "timeout": timeout},
                                       headers={"Authorization": f"Bearer {KEY}"})
                    walls.append(time.perf_counter() - started)
                    statuses.append(resp.status_code)
                    time.sleep(2)  # let the server finish abandoning the last one
                rows.append({"query": name, "timeout": timeout, "statuses": statuses,
                             "wall_s": [round(w, 3) for w in walls], "median_over_s": round(
                                 statistics.median(walls) - timeout, 3), "max_over_s": round(max(walls) - timeout, 3)})
                print(json.dumps(rows[-1]), file=sys.stderr)
    with open_store(args.uri) as store:
        store.clear()
    OUT.write_text(json.dumps({"reps": args.reps, "load": os.getloadavg()[0], "rows": rows}, indent=1) + "\n")
    print("| query | timeout s | statuses | wall s (each run) | worst over the timeout s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['query']} | {r['timeout']:g} | {', '.join(map(str, r['statuses']))} | "
              f"{', '.join(f'{w:.2f}' for w in r['wall_s'])} | {r['max_over_s']:+.2f} |")


if __name__ == "__main__":
    main()
