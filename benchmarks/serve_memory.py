"""Serving memory: what each gunicorn worker and each Ray actor holds of a bundle, and what it shares.

For a synthetic graph of ``--scale`` × Last.fm 2K (``loaders.synthetic_scale``, the graphs of
``benchmarks/scale.py``), the models of ``kgrec train`` (defaults, no tuning; ``--models`` to
choose) are fitted one per process and packed into one bundle (reused in ``--work`` when it
loads). Then, each under ``nice``:

- ``kgrec serve`` with 1, 2 and 4 gunicorn workers (``--workers-list``): once ``/v1/health``
  answers, ``--requests`` recommendation requests (every tenth with explanations) for users
  drawn at random, on new connections, so every worker serves some; then ``psutil``'s
  ``memory_full_info`` of the master and of every worker: RSS, USS (private), PSS (shared pages
  divided among the processes that map them) and shared (RSS − USS). The store is an *empty*
  embedded store: this measures the bundle, not the store (a MemoryStore holds its whole graph
  in each process — 7.9 GB at 16× in ``benchmarks/scale.py`` — so at that size serve from Neo4j).
  The extra memory of each worker beyond the first is ``(Σ PSS(n) − Σ PSS(1)) / (n − 1)``, the
  whole tree's proportional memory, compared with the one worker's RSS (target ≤ 15 %).
- ``kgrec recommend --all-users --engine ray --workers 2`` (and the local engine), the tree
  (driver, Ray's daemons, the actors) sampled every ``--sample-s``: peak Σ PSS, peak Σ RSS,
  and each actor's peak RSS/USS.

Prints one JSON document (also written to ``--out``, default ``benchmarks/results/serve_memory-<scale>x.json``).

    nice python benchmarks/serve_memory.py --scale 1
    nice python benchmarks/serve_memory.py --scale 16 \
        --models ease,graph_walk,itemcf,usercf,als,bpr,association,content,social
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KGREC = [sys.executable, "-c", "from kgrec.cli import main; main()"]
MB = 2**20
#: Where the measured kgrec comes from: this tree, or ``--kgrec-path`` (a folder holding a
#: ``kgrec`` package, e.g. an export of an older commit, to measure it the same way).
CODE = {"path": str(ROOT), "root": ROOT}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": CODE["path"], "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out.pop("KGREC_BUNDLE_KEY", None)  # unsigned bundles: the measurement is about memory
    return out


def step(name: str, **kwargs: Any) -> dict[str, Any]:
    """One ``benchmarks/scale_steps.py`` step in its own process (its peak RSS is its own)."""
    steps = [sys.executable, str(Path(CODE["root"]) / "benchmarks" / "scale_steps.py")]
    out = subprocess.run(["nice", *steps, name, json.dumps(kwargs)], capture_output=True, text=True, env=env(),
                         cwd=CODE["root"])
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed: {(out.stderr or out.stdout).strip().splitlines()[-3:]}")
    return json.loads(lines[-1][7:])


def build_bundle(scale: float, names: list[str], work: Path) -> tuple[Path, dict[str, Any]]:
    """The snapshot (from the generator's arrays), each model fitted in its own process, the bundle."""
    from kgrec.recommenders.registry import get

    bundle, snap, models = work / "bundle", work / "snapshot", work / "models"
    info: dict[str, Any] = {"fits": {}}
    if (bundle / "manifest.json").exists():
        check = (f"from kgrec.recommenders.bundle.model_bundle import Bundle\n"
                 f"assert set(Bundle.load({str(bundle)!r}).models) <= {set(names) | {'popularity'}!r}\n")
        if subprocess.run([sys.executable, "-c", check], env=env(), capture_output=True).returncode == 0:
            log(f"reusing {bundle}")
            return bundle, {"reused": True}
        log(f"rebuilding {bundle}")
    if not (snap / "snapshot.json").exists():
        log(f"snapshot of {scale:g}x ...")
        info["snapshot"] = step("arrays_snapshot", scale=scale, seed=42, out=str(snap))
    order = sorted({*names, "popularity"}, key=lambda n: get(n).composes)
    for name in order:
        if (models / name / "model.json").exists():
            continue
        log(f"fit {name} ...")
        try:
            got = step("fit", snapshot=str(snap), model=name, out=str(models / name), options={})
        except RuntimeError as exc:  # e.g. a rating model on a graph without ratings: left out, said so
            info["fits"][name] = {"left_out": str(exc)[-300:]}
            log(f"{name} left out: {str(exc)[-200:]}")
            continue
        info["fits"][name] = {"fit_s": round(got["fit_s"], 1), "peak_rss_mb": round(got["vmhwm_mb"])}
    order = [n for n in order if (models / n / "model.json").exists()]
    log("bundle ...")
    code = (f"from pathlib import Path\nfrom kgrec.graph.snapshot import GraphSnapshot\n"
            f"from kgrec.recommenders.registry import get\n"
            f"from kgrec.recommenders.bundle.model_bundle import save_bundle\n"
            f"s = GraphSnapshot.load({str(snap)!r})\n"
            f"m = {{n: get(n).load(Path({str(models)!r}) / n, s) for n in {order!r}}}\n"
            f"save_bundle({str(bundle)!r}, s, m, overwrite=True)\n")
    subprocess.run(["nice", sys.executable, "-c", code], check=True, env=env(), cwd=work)
    return bundle, info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory(p: psutil.Process) -> dict[str, float]:
    """RSS, USS, PSS and shared (RSS − USS), and from ``smaps_rollup`` the part of PSS that is
    file-backed (mapped bundle files: clean, droppable page cache) and the private dirty memory
    (what the process alone wrote: its heap, copied-on-write pages), which no one shares."""
    m = p.memory_full_info()
    out = {"rss_mb": m.rss / MB, "uss_mb": m.uss / MB, "pss_mb": m.pss / MB, "shared_mb": (m.rss - m.uss) / MB}
    with contextlib.suppress(OSError):
        fields = {}
        for line in Path(f"/proc/{p.pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) / 1024
        out["pss_file_mb"] = fields.get("Pss_File", 0.0)
        out["private_dirty_mb"] = fields.get("Private_Dirty", 0.0)
    return out


def get(url: str, timeout: float = 120) -> bytes:
    with urlopen(Request(url, headers={"Connection": "close"}), timeout=timeout) as r:
        return bytes(r.read())


def serve(bundle: Path, store: str, workers: int, users: list[str], requests: int, work: Path,
          worker_class: str | None = None) -> dict[str, Any]:
    port = free_port()
    logf = (work / f"serve-{workers}.log").open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(["nice", *KGREC, "serve", "--bundle", str(bundle), "--store", store, "--port",
                             str(port), "--workers", str(workers), "--threads", "2", "--no-access-log",
                             *(["--worker-class", worker_class] if worker_class else [])],
                            stdout=subprocess.DEVNULL, stderr=logf, env=env(), cwd=work, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kgrec serve exited: {(work / f'serve-{workers}.log').read_text()[-1500:]}")
            with contextlib.suppress(OSError):
                health = json.loads(get(f"{base}/v1/health", timeout=5))
                break
            time.sleep(1)
        ready_s = time.perf_counter() - t0
        master = psutil.Process(proc.pid)  # nice execs kgrec: the gunicorn master has this pid
        while len(master.children()) < workers:
            time.sleep(0.5)
        rng = random.Random(7)
        errors = 0
        t1 = time.perf_counter()

        def client(n: int) -> None:
            nonlocal errors
            for k in range(n):
                u = rng.choice(users)
                try:
                    get(f"{base}/v1/users/{u}/recommendations?k=10" + ("&explain=true" if k % 10 == 0 else ""))
                except OSError:
                    errors += 1

        threads = [threading.Thread(target=client, args=(requests // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served_s = time.perf_counter() - t1
        procs = {"master": memory(master)}
        for i, w in enumerate(sorted(master.children(), key=lambda c: c.pid)):
            procs[f"worker{i + 1}"] = memory(w)
        ws = [v for k, v in procs.items() if k.startswith("worker")]
        return {"workers": workers, "ready_s": round(ready_s, 1), "requests": requests, "errors": errors,
                "requests_s": round(served_s, 1), "digest": health["bundle"].get("digest"), "processes": procs,
                "total_pss_mb": sum(v["pss_mb"] for v in procs.values()),
                "total_rss_mb": sum(v["rss_mb"] for v in procs.values()),
                "worker_rss_mb": [w["rss_mb"] for w in ws], "worker_uss_mb": [w["uss_mb"] for w in ws],
                "worker_pss_mb": [w["pss_mb"] for w in ws],
                "worker_private_dirty_mb": [w.get("private_dirty_mb") for w in ws]}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        logf.close()


def batch(bundle: Path, engine: str, work: Path, sample_s: float, limit_gb: float) -> dict[str, Any]:
    """``kgrec recommend --all-users`` on ``engine``; the process tree sampled to its end."""
    out = work / f"recs-{engine}.csv"
    extra = ["--engine", "ray", "--workers", "2"] if engine == "ray" else []
    logf = (work / f"recommend-{engine}.log").open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(["nice", *KGREC, "recommend", "--bundle", str(bundle), "--all-users", "--k", "10",
                             "--format", "csv", "--output", str(out), *extra], stdout=subprocess.DEVNULL,
                            stderr=logf, env=env(), cwd=work, start_new_session=True)
    peak = {"tree_pss_mb": 0.0, "tree_rss_mb": 0.0}
    actors: dict[int, dict[str, float]] = {}
    killed = None
    while proc.poll() is None:
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        pss = rss = 0.0
        for p in tree:
            with contextlib.suppress(psutil.Error):
                m = memory(p)
                pss, rss = pss + m["pss_mb"], rss + m["rss_mb"]
                if "_Worker" in " ".join(p.cmdline()) or p.name().startswith("ray::_Worker"):
                    a = actors.setdefault(p.pid, {"rss_mb": 0.0, "uss_mb": 0.0, "pss_mb": 0.0})
                    for k in a:
                        a[k] = max(a[k], m[k])
        peak["tree_pss_mb"], peak["tree_rss_mb"] = max(peak["tree_pss_mb"], pss), max(peak["tree_rss_mb"], rss)
        if pss > limit_gb * 1024:
            killed = f"Σ PSS {pss / 1024:.1f} GB passed {limit_gb:g} GB"
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(sample_s)
    proc.wait()
    logf.close()
    lines = sum(1 for _ in out.open()) - 1 if out.exists() else 0
    return {"engine": engine, "exit": proc.returncode, "killed": killed, "wall_s": round(time.perf_counter() - t0, 1),
            "rows": lines, **{k: round(v) for k, v in peak.items()},
            "actors": [{k: round(v) for k, v in a.items()} for a in actors.values()],
            "log_tail": (work / f"recommend-{engine}.log").read_text(errors="replace").strip().splitlines()[-2:]}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    one = next(r for r in runs if r["workers"] == 1)
    first_rss = one["worker_rss_mb"][0]
    out: dict[str, Any] = {"first_worker_rss_mb": round(first_rss),
                           "first_worker_uss_mb": round(one["worker_uss_mb"][0])}
    for r in runs:
        n = r["workers"]
        row = {"total_pss_mb": round(r["total_pss_mb"]), "total_rss_mb": round(r["total_rss_mb"]),
               "worker_rss_mb": [round(x) for x in r["worker_rss_mb"]],
               "worker_uss_mb": [round(x) for x in r["worker_uss_mb"]],
               "worker_pss_mb": [round(x) for x in r["worker_pss_mb"]],
               "worker_private_dirty_mb": [round(x) for x in r["worker_private_dirty_mb"] if x is not None]}
        if n > 1:
            extra = (r["total_pss_mb"] - one["total_pss_mb"]) / (n - 1)
            row["extra_worker_mb"] = round(extra)
            row["extra_worker_share_of_first_rss"] = round(extra / first_rss, 4)
        out[f"{n}_workers"] = row
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--models", default=None, help="comma-separated (default: kgrec train's default models)")
    p.add_argument("--work", default=None, help="snapshot, models and bundle (kept and reused)")
    p.add_argument("--workers-list", default="1,2,4")
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--sample-s", type=float, default=1.0)
    p.add_argument("--limit-gb", type=float, default=20.0, help="kill a batch whose tree passes this Σ PSS")
    p.add_argument("--out", default=None)
    p.add_argument("--build-only", action="store_true", help="fit and pack the bundle, measure nothing")
    p.add_argument("--worker-class", default=None, help="kgrec serve --worker-class (default: its own)")
    p.add_argument("--kgrec-path", default=None, help="measure the kgrec package found in this folder instead "
                   "(its benchmarks/scale_steps.py fits the models)")
    a = p.parse_args()
    if a.kgrec_path:
        CODE["path"], CODE["root"] = a.kgrec_path, (Path(a.kgrec_path) / "kgrec").resolve()
    from kgrec.recommenders.registry import default_models

    names = a.models.split(",") if a.models else list(default_models())
    work = Path(a.work or Path(tempfile.gettempdir()) / f"kgrec-serve-memory-{a.scale:g}x")
    work.mkdir(parents=True, exist_ok=True)
    bundle, built = build_bundle(a.scale, names, work)
    if a.build_only:
        print(json.dumps(built, indent=1))
        return
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    users = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys\nfrom kgrec.graph.snapshot import GraphSnapshot\n"
         f"print(json.dumps(list(GraphSnapshot.load({str(bundle / 'snapshot')!r}).users.ids)))"],
        env=env(), capture_output=True, text=True, check=True).stdout)
    store = work / "empty-store"
    shutil.rmtree(store, ignore_errors=True)
    served = sorted(json.loads((bundle / "manifest.json").read_text())["fallback"])
    result: dict[str, Any] = {"scale": a.scale, "code": CODE["path"], "models": served, "build": built,
                              "bundle_mb": round(size / MB), "users": len(users), "cpus": os.cpu_count(),
                              "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                              "load_average": os.getloadavg(), "store": "empty memory:// store", "serve": []}
    for n in (int(x) for x in a.workers_list.split(",")):
        log(f"serve with {n} worker(s) ...")
        result["serve"].append(serve(bundle, f"memory://{store}", n, users, a.requests, work, a.worker_class))
    result["summary"] = summary(result["serve"])
    if not a.no_ray:
        result["batch"] = []
        for engine in ("local", "ray"):
            log(f"recommend --all-users on {engine} ...")
            result["batch"].append(batch(bundle, engine, work, a.sample_s, a.limit_gb))
    result["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    out = Path(a.out or ROOT / "benchmarks" / "results" / f"serve_memory-{a.scale:g}x.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
