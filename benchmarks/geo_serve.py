"""Geographic filter under load: ``near=LAT,LON&radius_km=R`` on the Gowalla graph, 2 workers.

Serves a bundle trained by ``kgrec train`` with the default models on the Gowalla-u1000 training
split (the location check's protocol: the bundle ``project_eval.py --keep`` leaves, or any bundle
with its memory store), through ``kgrec serve`` (gunicorn), the default model (the hybrid), k = 10.
Each request names a user (in rotation) and a circle: centred on a place drawn at random (seeded)
from the located places, radius drawn from ``--radii``. wrk paces every connection so that the
offered rate is ``--rps`` (below saturation: the percentiles are service time, not queue). Prints
throughput, latency percentiles and errors, and a markdown block for RESULTS.md.

    python benchmarks/geo_serve.py --bundle DIR --store memory://DIR [--rps 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serve import ensure_wrk, free_port, run_wrk, worker_rss_mb  # noqa: E402
from benchmarks.wrk_paths import paths_script, stop_server  # noqa: E402


def start(bundle: Path, store: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from kgrec.cli import main; main()", "serve", "--bundle", str(bundle),
           "--store", store, "--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("server did not come up within 300 s")


def circles(bundle: Path, n: int, seed: int) -> list[str]:
    """``n`` centres ("lat,lon") drawn from the bundle's located places."""
    import numpy as np

    from kgrec.graph.snapshot import GraphSnapshot

    snap = GraphSnapshot.load(bundle / "snapshot")
    assert snap.item_lat is not None and snap.item_lon is not None
    located = np.flatnonzero(np.isfinite(snap.item_lat))
    if len(located) == 0:
        sys.exit("the bundle's graph has no coordinates")
    pick = np.random.default_rng(seed).choice(located, n)
    return [f"{snap.item_lat[i]:.6f},{snap.item_lon[i]:.6f}" for i in pick]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--rps", type=float, default=200.0, help="offered rate over all connections")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--radii", default="1,5,10", help="comma-separated radii in km, used in rotation")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    wrk = ensure_wrk()
    users = json.loads((args.bundle / "snapshot" / "snapshot.json").read_text(encoding="utf-8"))["users"]
    centres = circles(args.bundle, 997, args.seed)  # a prime, so users and circles do not pair up
    radii = [r.strip() for r in args.radii.split(",") if r.strip()]
    port = free_port()
    load_before = os.getloadavg()[0]
    proc = start(args.bundle, args.store, port, args.workers, args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="kgrec-geo-bench-"))
    try:
        paths = [f"/v1/users/{users[n % len(users)]}/recommendations?k=10&near={centres[n % len(centres)]}"
                 f"&radius_km={radii[n % len(radii)]}" for n in range(len(users) * len(centres))]
        script = paths_script(tmp / "near.lua", paths, round(args.connections * 1000 / args.rps))
        warm = paths_script(tmp / "warm.lua", paths, 0)
        run_wrk(wrk, f"http://127.0.0.1:{port}/", 10, args.connections, warm)  # caches, lazy imports
        result = run_wrk(wrk, f"http://127.0.0.1:{port}/", args.seconds, args.connections, script)
        rss = worker_rss_mb(proc.pid)
    finally:
        stop_server(proc)
    load_after = os.getloadavg()[0]
    print(json.dumps({**result, "rss_mb": rss, "load": [load_before, load_after], "radii": radii,
                      "offered_rps": args.rps}))
    print(f"| near= (radius {'/'.join(radii)} km), paced at {args.rps:.0f} req/s offered | {result['requests']:,} | "
          f"{result['rps']:.0f} | {result['p50']:.2f} | {result['p90']:.2f} | {result['p99']:.2f} | "
          f"{result['errors']} |  load {load_before:.1f} → {load_after:.1f}")


if __name__ == "__main__":
    main()
