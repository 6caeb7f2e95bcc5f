"""Soak: mixed reads and writes against ``kgrec serve`` (2 gunicorn workers) over Neo4j, for
10 minutes at 200 requests/s, then check that nothing was lost and the workers did not grow.

90 % reads (a user's recommendations, or an item's similar items), 10 % writes (an
interaction or, one time in three, a dislike, for a known user or a new one, on a known item),
sent open-loop at a fixed rate by client threads. After each acknowledged write the client
reads that user's recommendations on a new connection (so any worker may answer) and counts
it stale if the item written is in them: read-your-writes under load. Pass conditions: 0 errors
(every answer 200/201); 0 stale reads; every acknowledged write is in Neo4j afterwards; worker
RSS drift < 5 % (median of the last minute over the median of the first minute after warm-up).
The table goes under ``<!-- section:soak -->`` in RESULTS.md.

    PYTHONPATH=. python benchmarks/soak.py                      # starts its own Neo4j
    PYTHONPATH=. python benchmarks/soak.py --neo4j bolt://127.0.0.1:7687 --seconds 60 --no-write

"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from kgrec.graph.store import open_store  # noqa: E402
from kgrec.loaders.synthetic import generate  # noqa: E402
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle  # noqa: E402
from tests.neo4j_fixtures import dedicated_neo4j  # noqa: E402
from tests.serve_fixtures import serving  # noqa: E402

API_KEY = "soak-writer-key-0123456789"
MODELS = ("graph_walk", "itemcf", "popularity")
#: Seconds excluded from the RSS baseline while caches warm up.
WARMUP = 30


@dataclass
class Tally:
    """What the client threads saw; one lock guards it all."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    acknowledged: list[tuple[str, str, str]] = field(default_factory=list)  # (user, item, type)
    late: int = 0
    checked: int = 0
    stale: int = 0


def worker_rss_mb(master: int) -> list[float]:
    out = subprocess.run(["ps", "--ppid", str(master), "-o", "rss="], capture_output=True, text=True).stdout
    return [int(x) / 1024 for x in out.split()]


def client(port: int, rate: float, until: float, users: list[str], items: list[str], tally: Tally,
           seed: int) -> None:
    """Send requests every 1/rate seconds until ``until`` (open loop: a late request is counted,
    not skipped), on one keep-alive connection."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    due, n = time.monotonic(), 0
    while due < until:
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        elif now - due > 1.0:
            tally.late += 1
        roll, n = rng.random(), n + 1
        if roll < 0.1:
            user = rng.choice(users) if rng.random() < 0.7 else f"soak-{seed}-{n}"
            item = rng.choice(items)
            kind = "dislike" if rng.random() < 1 / 3 else "positive"
            row = {"user": user, "item": item, **({"type": "dislike"} if kind == "dislike" else
                                                   {"weight": rng.randint(1, 5)})}
            method, path, body = "POST", "/v1/interactions", json.dumps(row)
        elif roll < 0.7:
            method, path, body = "GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10", None
        else:
            method, path, body = "GET", f"/v1/items/{rng.choice(items)}/similar?k=10", None
        started = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as exc:
            status = 0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with tally.lock:
                tally.failures.append(f"{method} {path}: {exc!r}")
        with tally.lock:
            tally.answers[status] = tally.answers.get(status, 0) + 1
            tally.latencies.append(time.monotonic() - started)
            if status == 201:
                tally.acknowledged.append((user, item, kind))
            elif status not in (200, 0) and len(tally.failures) < 50:
                tally.failures.append(f"{method} {path}: {status}")
        if status == 201:
            stale = served_again(port, user, item)
            with tally.lock:
                tally.checked += 1
                tally.stale += stale
        due += 1.0 / rate
    conn.close()


def served_again(port: int, user: str, item: str) -> bool:
    """Whether ``item`` is still recommended to ``user`` right after a write acknowledged it (a new
    connection, so whichever worker accepts it answers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/v1/users/{user}/recommendations?k=50", headers={"Connection": "close"})
        body = json.loads(conn.getresponse().read())
        return item in {r["item"] for r in body.get("recommendations", [])}
    except (OSError, http.client.HTTPException, ValueError):
        return False  # the failure is counted by the next request; this check is about staleness
    finally:
        conn.close()


#: What an acknowledged write of each type left in Neo4j.
FOUND = {
    "positive": ("UNWIND $pairs AS p MATCH (:User {id: p[0]})-[:INTERACTED]->(:Item {id: p[1]}) "
                 "RETURN count(DISTINCT p) AS found"),
    "dislike": ("UNWIND $pairs AS p MATCH (:User {id: p[0]})-[:DISLIKED]->(:Item {id: p[1]}) "
                "RETURN count(DISTINCT p) AS found"),
}


def missing_writes(store_url: str, writes: list[tuple[str, str, str]]) -> int:
    """How many acknowledged interactions and dislikes Neo4j does not hold."""
    missing = 0
    with open_store(store_url) as store:
        for kind, query in FOUND.items():
            unique = sorted({(u, i) for u, i, t in writes if t == kind})
            found = sum(store.run_read(query, {"pairs": [list(p) for p in unique[k:k + 5000]]})[0]["found"]
                        for k in range(0, len(unique), 5000))
            missing += len(unique) - found
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--neo4j", help="an existing server to load into (emptied first); default: start one")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kgrec-soak-")))
        uri = args.neo4j or stack.enter_context(dedicated_neo4j(tmp / "neo4j")).uri
        graph = generate(users=args.users, items=args.items, seed=5)
        with open_store(uri) as store:
            store.clear()
            store.load(graph.records)
            snapshot = store.snapshot()
        bundle = save_bundle(tmp / "bundle", snapshot, fit_models(snapshot, MODELS, seed=5))
        port, proc = stack.enter_context(serving(bundle, uri, tmp, env={"KGREC_API_KEY": API_KEY},
                                                 workers=2, threads=4))
        tally, rss = Tally(), []
        start = time.monotonic()
        until = start + args.seconds
        users, items = list(snapshot.users.ids), list(snapshot.items.ids)
        threads = [threading.Thread(target=client, args=(port, args.rate / args.clients, until, users, items,
                                                         tally, k), daemon=True) for k in range(args.clients)]
        for t in threads:
            t.start()
        while time.monotonic() < until:
            time.sleep(5)
            rss.append((time.monotonic() - start, sum(worker_rss_mb(proc.pid))))
        for t in threads:
            t.join(timeout=60)
        missing = missing_writes(uri, tally.acknowledged)

    sent = sum(tally.answers.values())
    errors = sent - tally.answers.get(200, 0) - tally.answers.get(201, 0)
    first = [mb for t, mb in rss if WARMUP <= t < WARMUP + 60]
    last = [mb for t, mb in rss if t >= args.seconds - 60]
    drift = (statistics.median(last) / statistics.median(first) - 1) * 100 if first and last else float("nan")
    lat = sorted(tally.latencies)
    p50, p99 = (lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000) if lat else (0, 0)
    ok = errors == 0 and missing == 0 and tally.stale == 0 and abs(drift) < 5
    text = "\n".join([
        f"`python benchmarks/soak.py --seconds {args.seconds} --rate {args.rate:g}`: `kgrec serve` with 2 gunicorn "
        f"workers × 4 threads over Neo4j ({args.users} users, {args.items} items; models {', '.join(MODELS)}), "
        f"{args.clients} paced clients, 90 % reads / 10 % writes (a third of them dislikes), each acknowledged "
        f"write followed by a read of that user's 50 recommendations on a new connection; load average "
        f"{load_before:.1f} → {os.getloadavg()[0]:.1f} (a shared 2-core machine).",
        "",
        "| requests | achieved req/s | errors | late sends | acknowledged writes | stale reads after them "
        "| missing afterwards | p50 ms | p99 ms | worker RSS first → last minute | drift | pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {sent} | {sent / args.seconds:.0f} | {errors} | {tally.late} | {len(tally.acknowledged)} | "
        f"{tally.stale} of {tally.checked} | {missing} | "
        f"{p50:.1f} | {p99:.1f} | {statistics.median(first) if first else 0:.0f} → "
        f"{statistics.median(last) if last else 0:.0f} MB | {drift:+.1f} % | {'yes' if ok else 'no'} |",
    ])
    print(text)
    for line in tally.failures[:10]:
        print("  ", line, file=sys.stderr)
    if not args.no_write:
        write_section("soak", text)


if __name__ == "__main__":
    main()
