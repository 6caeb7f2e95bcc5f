"""Serving benchmark: ``kgrec serve`` (gunicorn, 2 workers) under wrk on loopback.

Setup: the Last.fm 2K bundle (graph_walk + popularity, trained here once and cached under
``data/bench/``), model graph_walk, k = 10, requests spread over every user. Three runs in
one session: ``/v1/health`` (the framework's ceiling), recommendations without and with
explanations. Reports throughput, latency percentiles, errors and each worker's RSS, and
writes them under ``<!-- section:serve -->`` in RESULTS.md.

    python benchmarks/serve.py [--datasets DIR] [--seconds 60] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.wrk_paths import stop_server  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
#: Pauses of the paced runs are set from these offered rates (the achieved rate is lower, as
#: each connection also waits for its answer): about 500+ req/s for plain requests, and
#: about half of what one core sustains with explanations.
PACED_RPS = {"plain": 800.0, "explain": 130.0}
TARGETS = {"rps": 500.0, "p99_plain_ms": 30.0, "p99_explain_ms": 60.0, "explain_rps": 100.0, "rss_mb": 1024.0,
           "min_requests": 5000}


def ensure_wrk() -> str:
    """wrk from Debian's packages; installed here when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True)
        return shutil.which("wrk") or sys.exit("wrk did not install")
    sys.exit("wrk is missing: apt-get install wrk")


def build_bundle(datasets: Path, out: Path, retrain: bool = False) -> Path:
    """Train graph_walk (+ popularity, the last resort) on Last.fm 2K once; reuse afterwards
    (retrained when the cached bundle no longer loads, e.g. after a model format change)."""
    from kgrec.graph.snapshot import build_snapshot
    from kgrec.loaders import lastfm
    from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle

    if (out / "manifest.json").is_file() and not retrain:
        try:
            Bundle.load(out)
            return out
        except (ValueError, KeyError, FileNotFoundError) as exc:
            print(f"cached bundle unusable ({exc}); retraining", file=sys.stderr)

    started = time.perf_counter()
    loaded = lastfm.load(datasets / "lastfm-2k")
    snapshot = build_snapshot(loaded.records)
    models = fit_models(snapshot, ["graph_walk", "popularity"], seed=42)
    save_bundle(out, snapshot, models, seed=42, overwrite=True)
    print(f"bundle trained in {time.perf_counter() - started:.1f}s -> {out}", file=sys.stderr)
    return out


def build_store(datasets: Path, out: Path) -> str:
    """The Last.fm graph in a MemoryStore directory (once), so health checks ping a real store
    and each worker holds the graph it would hold in production."""
    from kgrec.graph.memory import FILE_NAME, MemoryStore

    if not (out / FILE_NAME).is_file():
        from kgrec.loaders import lastfm

        store = MemoryStore(out)
        store.load(lastfm.load(datasets / "lastfm-2k").records)
        store.close()
    return f"memory://{out}"


def wait_until_store_reachable(base: str, timeout: float = 300.0) -> None:
    """Workers open the store in the background at start; measure only once both have."""
    deadline, streak = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and streak < 10:
        with urlopen(f"{base}/v1/health", timeout=10) as resp:
            streak = streak + 1 if json.loads(resp.read())["store"]["reachable"] else 0
        time.sleep(0.2)
    if streak < 10:
        sys.exit("the store did not become reachable in every worker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, store: str, port: int, workers: int, threads: int,
                 worker_class: str = "asgi") -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from kgrec.cli import main; main()", "serve", "--bundle", str(bundle),
           "--store", store, "--port", str(port), "--workers", str(workers), "--threads", str(threads),
           "--worker-class", worker_class,
           "--model", "graph_walk"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("server did not come up within 120 s")


LUA = """
users = {%s}
explain = "%s"
pause = %s
counter = 0
delay = function()
  return pause
end
request = function()
  counter = counter + 1
  local u = users[(counter %% #users) + 1]
  return wrk.format("GET", "/v1/users/" .. u .. "/recommendations?k=10&model=graph_walk" .. explain)
end
"""


def run_wrk(wrk: str, url: str, seconds: int, connections: int, script: Path | None) -> dict:
    cmd = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(f"cannot read wrk latency {value!r}")
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(out: str) -> dict:
    pct = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {"requests": requests, "rps": rps, "p50": pct.get(50), "p90": pct.get(90), "p99": pct.get(99),
            "errors": errors}


def in_process_ms(bundle: Path, users: list[str], n: int = 300) -> dict[str, dict[str, float]]:
    """The read path alone (no HTTP, no JSON), one request at a time: where the time goes."""
    import numpy as np

    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.server_loading import load_server

    server = load_server(bundle, default_model="graph_walk")
    picked = users[:: max(1, len(users) // n)][:n]
    out = {}
    for name, explain in (("plain", False), ("explain", True)):
        times = []
        for u in picked:
            started = time.perf_counter()
            server.recommend(Query(u, 10, "graph_walk", explain=explain))
            times.append((time.perf_counter() - started) * 1000)
        out[name] = {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
    return out


def read_your_writes_us(bundle: Path, store: str, users: list[str], n: int = 2000) -> dict[str, float]:
    """What the per-request store check costs (``LiveState.state``), in microseconds: a user whose
    tokens are current (the common case), and a user just written to (history shipped again)."""
    import numpy as np

    from kgrec.graph.records import Interaction
    from kgrec.graph.store_factory import open_store
    from kgrec.recommenders.serving.live_state import LiveState
    from kgrec.recommenders.serving.server_loading import load_server

    server = load_server(bundle, default_model="graph_walk")
    st = open_store(store)
    live = LiveState(server, lambda fn: fn(st))
    picked = (users * (n // len(users) + 1))[:n]
    for u in picked:
        live.state(u)
    hit = []
    for u in picked:
        started = time.perf_counter()
        live.state(u)
        hit.append((time.perf_counter() - started) * 1e6)
    item = "kgrec-serve-bench-item"  # not in the graph: the benchmark leaves the store as it found it
    changed = []
    for u in picked[:200]:
        with st.exclusive():
            st.upsert_interactions([Interaction(u, item, 1.0)])
        started = time.perf_counter()
        live.state(u)
        changed.append((time.perf_counter() - started) * 1e6)
        with st.exclusive():
            st.delete_interactions([(u, item)])
    with st.exclusive():
        st.delete_items([item])
    st.close()
    return {"hit_p50": float(np.percentile(hit, 50)), "hit_p99": float(np.percentile(hit, 99)),
            "changed_p50": float(np.percentile(changed, 50)), "changed_p99": float(np.percentile(changed, 99))}


def load_neo4j(datasets: Path, uri: str) -> str:
    """Last.fm 2K into the given Neo4j (its graph is replaced)."""
    from kgrec.graph.store_factory import open_store
    from kgrec.loaders import lastfm

    with open_store(uri) as st:
        st.clear()
        st.load(lastfm.load(datasets / "lastfm-2k").records)
    return uri


def worker_rss_mb(master: int) -> list[float]:
    import psutil

    return [round(p.memory_info().rss / 2**20, 1) for p in psutil.Process(master).children()]


def write_section(text: str) -> None:
    marker = "<!-- section:serve -->"
    content = RESULTS.read_text(encoding="utf-8")
    if marker not in content:
        raise SystemExit(f"{RESULTS} has no {marker} marker")
    start = content.index(marker) + len(marker)
    nxt = content.find("<!-- section:", start)
    end = nxt if nxt >= 0 else len(content)
    RESULTS.write_text(content[:start] + "\n\n" + text.strip() + "\n\n" + content[end:].lstrip("\n"), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("KGREC_DATASETS", ROOT.parent / "shared"
                                                                          / "datasets")))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--health-seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--worker-class", choices=["asgi", "gthread"], default="asgi",
                    help="kgrec serve's worker class (benchmarks/slow_clients.py compares them under slow clients)")
    ap.add_argument("--cache", type=Path, default=ROOT / "data" / "bench" / "lastfm-bundle")
    ap.add_argument("--retrain", action="store_true", help="train the bundle again (current model defaults)")
    ap.add_argument("--no-write", action="store_true", help="print the results, leave RESULTS.md alone")
    ap.add_argument("--neo4j", help="also measure the read-your-writes check on this Neo4j (Last.fm is loaded "
                                    "into it, replacing its graph)")
    args = ap.parse_args()

    wrk = ensure_wrk()
    bundle = build_bundle(args.datasets, args.cache, args.retrain)
    load_before = os.getloadavg()[0]
    users = json.loads((bundle / "snapshot" / "snapshot.json").read_text(encoding="utf-8"))["users"]
    tmp = Path(tempfile.mkdtemp(prefix="kgrec-serve-bench-"))
    port = free_port()
    store = build_store(args.datasets, args.cache.parent / "lastfm-store")
    proc = start_server(bundle, store, port, args.workers, args.threads, args.worker_class)
    base = f"http://127.0.0.1:{port}"
    wait_until_store_reachable(base)
    quoted = ",".join(json.dumps(u) for u in users)
    runs: dict[str, dict] = {}
    try:
        # health first: a slow run leaves queued requests behind that would drag the ceiling down
        run_wrk(wrk, base + "/v1/health", 3, args.connections, None)
        runs["health"] = run_wrk(wrk, base + "/v1/health", args.health_seconds, args.connections, None)
        print("health", runs["health"], file=sys.stderr)
        for name, explain in (("plain", ""), ("explain", "&explain=true")):
            flat_out = tmp / f"{name}.lua"
            flat_out.write_text(LUA % (quoted, explain, 0), encoding="utf-8")
            run_wrk(wrk, base + "/", 5, args.connections, flat_out)  # warm-up: caches, lazy imports
            runs[name] = run_wrk(wrk, base + "/", args.seconds, args.connections, flat_out)
            print(name, runs[name], file=sys.stderr)
            # paced: each connection waits between requests, so the server runs below saturation
            # and the percentiles measure service time rather than the queue a closed loop builds
            paced = tmp / f"{name}-paced.lua"
            pause = round(args.connections * 1000 / PACED_RPS[name])
            paced.write_text(LUA % (quoted, explain, pause), encoding="utf-8")
            runs[f"{name}_paced"] = run_wrk(wrk, base + "/", args.seconds, args.connections, paced)
            print(f"{name} paced", runs[f"{name}_paced"], file=sys.stderr)
        rss = worker_rss_mb(proc.pid)
        load_after = os.getloadavg()[0]
    finally:
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    alone = in_process_ms(bundle, users)
    ryw = {"memory store": read_your_writes_us(bundle, store, users)}
    if args.neo4j:
        ryw["Neo4j"] = read_your_writes_us(bundle, load_neo4j(args.datasets, args.neo4j), users)
    p, e, h = runs["plain"], runs["explain"], runs["health"]
    pp, ep = runs["plain_paced"], runs["explain_paced"]
    errors = sum(r["errors"] for r in runs.values())
    ok = {
        "throughput": p["rps"] >= TARGETS["rps"],
        "p99 plain": pp["p99"] <= TARGETS["p99_plain_ms"] and pp["rps"] >= TARGETS["rps"],
        "p99 explain": ep["p99"] <= TARGETS["p99_explain_ms"] and ep["rps"] >= TARGETS["explain_rps"],
        "paced length": min(pp["requests"], ep["requests"]) >= TARGETS["min_requests"],
        "errors": errors == 0,
        "rss": max(rss) <= TARGETS["rss_mb"],
    }
    verdict = lambda good: "met" if good else "**missed**"  # noqa: E731
    worker_class = args.worker_class
    sample = len(users[:: max(1, len(users) // 300)][:300])
    lines = [
        "## Serving (`benchmarks/serve.py`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, shared by server, load generator and other work). `kgrec serve` with "
        f"gunicorn, {args.workers} workers × {args.threads} threads ({worker_class}), Last.fm 2K bundle "
        f"({len(users)} users), model graph_walk, k = 10, users in rotation, store: the Last.fm graph in a "
        f"MemoryStore; wrk -t2 -c{args.connections} on loopback: {args.health_seconds} s of `/v1/health` "
        f"first, then {args.seconds} s per recommendation run after a 5 s warm-up. *Saturating* runs send "
        "the next request as soon as the last is answered (throughput; their latency is mostly queue); "
        "*paced* runs pause between requests so the server runs below saturation (latency). "
        f"1-minute load average {load_before:.1f} before and {load_after:.1f} after.",
        "",
        "| run | requests | req/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in (("/v1/health, saturating (ceiling)", h), ("recommendations, saturating", p),
                     ("recommendations, paced", pp), ("recommendations + explain, saturating", e),
                     ("recommendations + explain, paced", ep)):
        lines.append(f"| {label} | {r['requests']:,} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | "
                     f"{r['p99']:.2f} | {r['errors']} |")
    lines += [
        "",
        f"- Throughput {p['rps']:.0f} req/s vs target ≥ {TARGETS['rps']:.0f}: {verdict(ok['throughput'])}; "
        f"{p['rps'] / h['rps']:.0%} of the health ceiling ({h['rps']:.0f} req/s); with explanations "
        f"{e['rps']:.0f} req/s ({e['rps'] / h['rps']:.1%}).",
        f"- p99 {pp['p99']:.1f} ms at {pp['rps']:.0f} req/s without explanations (target ≤ 30 at ≥ 500 req/s): "
        f"{verdict(ok['p99 plain'])}; {ep['p99']:.1f} ms at {ep['rps']:.0f} req/s with them (target ≤ 60 at ≥ 100 "
        f"req/s): {verdict(ok['p99 explain'])}; paced runs of {args.seconds} s with {pp['requests']:,} and "
        f"{ep['requests']:,} requests (target ≥ {TARGETS['min_requests']:,} each): {verdict(ok['paced length'])}.",
        f"- Errors: {errors} over {4 * args.seconds + args.health_seconds} s: {verdict(ok['errors'])}.",
        f"- Worker RSS after the runs: {', '.join(f'{x:.0f} MB' for x in rss)} (target ≤ 1024 MB each, "
        f"the networkx store included): {verdict(ok['rss'])}.",
        f"- Where the time goes, the engine alone in one process (no HTTP or JSON, one request at a time, "
        f"{sample} users): p50 {alone['plain']['p50']:.1f} ms / p99 {alone['plain']['p99']:.1f} ms without "
        f"explanations, p50 {alone['explain']['p50']:.1f} ms / p99 {alone['explain']['p99']:.1f} ms with them. "
        "The gap between these and the HTTP figures is the WSGI/JSON layer and the worker threads "
        "sharing one interpreter and the machine's cores with wrk.",
        "- Read-your-writes, the per-request store check (`LiveState.state`, in process, µs): "
        + "; ".join(f"{k}: p50 {v['hit_p50']:.0f} / p99 {v['hit_p99']:.0f} when the user's tokens are current, "
                    f"p50 {v['changed_p50']:.0f} / p99 {v['changed_p99']:.0f} right after a write to that user"
                    for k, v in ryw.items()) + ". Every HTTP figure above includes it.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
