"""Slow clients against ``kgrec serve``: latency of normal requests with and without 200 idle
half-sent requests, for the asgi worker (the default) and gunicorn's gthread worker (the
fallback), and how many metric series random methods, paths and models add.

Setup as the hardening-2 acceptance check: a synthetic graph of 200 users and 300 items (seed 3),
``graph_walk,popularity``, MemoryStore, ``kgrec serve --workers 2 --threads 4``. Each phase sends
``--requests`` requests from ``--clients`` threads, a new connection each (as the check's urllib
does), alternating ``GET /v1/health`` and ``GET /v1/users/<u>/recommendations?k=10``, with a 3 s
client timeout; the slow phase first opens ``--slow`` connections that send
``GET /v1/health HTTP/1.1\\r\\nHost: x\\r\\n`` and then nothing. Each figure is the median of
``--reps`` repetitions; the JSON (every repetition) goes to ``benchmarks/results/slow_clients.json``.

    PYTHONPATH=. python benchmarks/slow_clients.py [--reps 3] [--worker-classes asgi,gthread]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.wrk_paths import stop_server  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "slow_clients.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(root: Path) -> tuple[Path, str]:
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.snapshot import build_snapshot
    from kgrec.loaders.synthetic import generate
    from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle

    graph = generate(users=200, items=300, seed=3)
    store = MemoryStore(root / "store")
    store.load(graph.records)
    store.close()
    snap = build_snapshot(graph.records)
    bundle = save_bundle(root / "bundle", snap, fit_models(snap, ["graph_walk", "popularity"], seed=1))
    return bundle, f"memory://{root / 'store'}"


def start(bundle: Path, store: str, worker_class: str, root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-c", "from kgrec.cli import main; main()", "serve", "--bundle", str(bundle), "--store",
           store, "--port", str(port), "--workers", "2", "--threads", "4", "--worker-class", worker_class,
           "--no-access-log"]
    log = (root / f"serve-{worker_class}.log").open("wb")
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as resp:
                if json.loads(resp.read())["store"]["reachable"]:
                    return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit(f"kgrec serve --worker-class {worker_class} did not start")


def one(port: int, path: str, timeout: float, stop_at: float) -> tuple[float, str]:
    if time.perf_counter() > stop_at:
        return 0.0, "skipped"
    t = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return time.perf_counter() - t, str(resp.status)
    except Exception as exc:  # a timeout or a reset: what is counted
        return time.perf_counter() - t, type(exc).__name__


def phase(port: int, n: int, clients: int, timeout: float, budget: float) -> dict:
    paths = ["/v1/health" if i % 2 else f"/v1/users/u{(i * 7) % 200:04d}/recommendations?k=10" for i in range(n)]
    stop_at = time.perf_counter() + budget
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda p: one(port, p, timeout, stop_at), paths))
    wall = time.perf_counter() - started
    done = [(d, s) for d, s in results if s != "skipped"]
    lat = sorted(d for d, _ in done) or [0.0]
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2)  # noqa: E731
    errors = [s for _, s in done if s != "200"]
    return {"sent": len(done), "skipped": len(results) - len(done), "p50_ms": q(0.5), "p99_ms": q(0.99),
            "max_ms": round(lat[-1] * 1000, 1), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "rps": round(len(done) / wall, 1)}


def open_slow(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            out.append(sock)
        except OSError:
            break
    return out


def series(port: int) -> int:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return sum(1 for line in resp.read().decode().splitlines() if line and not line.startswith("#"))


def raw(port: int, payload: bytes) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(payload)
            while sock.recv(65536):
                pass
    except OSError:
        pass


def series_growth(port: int) -> dict:
    rng = random.Random(7)
    word = lambda n: "".join(rng.choice(string.ascii_uppercase) for _ in range(n))  # noqa: E731
    series(port)  # the first scrape counts itself
    before = series(port)
    for _ in range(100):
        raw(port, f"{word(12)} /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw(port, f"GET /{word(8).lower()}/{word(8)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw(port, f"GET /v1/users/u0001/recommendations?model={word(8).lower()} HTTP/1.1\r\nHost: x\r\n"
                  "Connection: close\r\n\r\n".encode())
    return {"before": before, "after": series(port), "requests": 300}


def run(worker_class: str, bundle: Path, store: str, root: Path, args: argparse.Namespace) -> dict:
    proc, port = start(bundle, store, worker_class, root)
    try:
        phase(port, 100, args.clients, args.timeout, args.budget)  # warm up
        reps = []
        for _ in range(args.reps):
            rep = {"no_slow": phase(port, args.requests, args.clients, args.timeout, args.budget)}
            slow = open_slow(port, args.slow)
            time.sleep(2)
            rep["slow_opened"] = len(slow)
            rep["with_slow"] = phase(port, args.requests, args.clients, args.timeout, args.budget)
            for sock in slow:
                sock.close()
            time.sleep(2)
            reps.append(rep)
        growth = series_growth(port)
    finally:
        stop_server(proc)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    summary = {ph: {k: med([r[ph][k] for r in reps]) for k in ("p50_ms", "p99_ms", "max_ms", "rps")}
               | {"errors": sum(r[ph]["errors"] for r in reps), "skipped": sum(r[ph]["skipped"] for r in reps)}
               for ph in ("no_slow", "with_slow")}
    return {"worker_class": worker_class, "summary": summary, "series": growth, "reps": reps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker-classes", default="asgi,gthread")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=3.0, help="client timeout per request (s)")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per phase; the rest is skipped")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kgrec-slow-") as tmp:
        root = Path(tmp)
        bundle, store = build(root)
        results = [run(wc, bundle, store, root, args) for wc in args.worker_classes.split(",")]
    out = {"python": platform.python_version(), "cpus": os.cpu_count(), "load_before": load_before,
           "load_after": os.getloadavg()[0], "args": vars(args), "results": results}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"`python benchmarks/slow_clients.py` ({args.reps} repetitions, medians; load average "
          f"{load_before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    print("| worker | p50 / p99 ms, no slow | p50 / p99 ms, 200 slow | errors, 200 slow | series +, 300 random |")
    print("|---|---|---|---|---|")
    for r in results:
        a, b, g = r["summary"]["no_slow"], r["summary"]["with_slow"], r["series"]
        print(f"| {r['worker_class']} | {a['p50_ms']} / {a['p99_ms']} | {b['p50_ms']} / {b['p99_ms']} | "
              f"{b['errors']} (+{b['skipped']} not sent in the phase budget) | {g['after'] - g['before']} |")


if __name__ == "__main__":
    main()
