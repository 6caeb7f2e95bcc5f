"""The measured steps of ``benchmarks/scale.py``, each run in its own process.

``python benchmarks/scale_steps.py STEP JSON`` runs one step with the JSON object's
arguments and prints one JSON line of what it measured, with the process's own peak RSS
(``VmHWM``). Running each step in a fresh process is what makes that peak the step's own.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def vmhwm_mb() -> float:
    """This process's own peak RSS since exec (``VmHWM``). Unlike ``ru_maxrss`` it does not
    inherit the parent's size at fork, which Linux folds into a child's ``ru_maxrss``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return rss_mb()


def cli_step(argv: list[str]) -> dict[str, Any]:
    """A ``kgrec`` command run in this process, so that its peak RSS can be read at the end."""
    from kgrec.cli import main

    t0 = time.perf_counter()
    main.main(args=argv, standalone_mode=False)
    return {"command_s": time.perf_counter() - t0}


def counts_step(scale: float, seed: int) -> dict[str, Any]:
    from kgrec.loaders.synthetic_scale import lastfm_like

    return {"counts": lastfm_like(scale, seed).counts()}


def write_csv_step(scale: float, seed: int, out: str) -> dict[str, Any]:
    """Generate a synthetic graph and write it as a CSV folder (here, not in the long-lived parent)."""
    from kgrec.loaders.synthetic_scale import lastfm_like

    t0 = time.perf_counter()
    g = lastfm_like(scale, seed)
    g.write_csv(out)
    return {"write_s": time.perf_counter() - t0, "counts": g.counts()}


def snapshot_step(store: str, out: str | None = None) -> dict[str, Any]:
    """Open the store and take its snapshot (saved to ``out`` for the fits)."""
    from kgrec.graph.store_factory import open_store

    t0 = time.perf_counter()
    with open_store(store) as s:
        opened = time.perf_counter()
        snap = s.snapshot()
        done = time.perf_counter()
    if out:
        snap.save(out)
    return {"open_s": opened - t0, "snapshot_s": done - opened, "counts": snap.counts,
            "fingerprint": snap.fingerprint}


def arrays_snapshot_step(scale: float, seed: int, out: str) -> dict[str, Any]:
    """The snapshot of a synthetic graph built straight from its arrays (sizes no store holds here)."""
    from kgrec.loaders.synthetic_scale import lastfm_like

    t0 = time.perf_counter()
    snap = lastfm_like(scale, seed).snapshot()
    snap.save(out)
    return {"build_s": time.perf_counter() - t0, "counts": snap.counts, "fingerprint": snap.fingerprint}


def neo4j_clear_step(store: str) -> dict[str, Any]:
    from kgrec.graph.store_factory import open_store

    t0 = time.perf_counter()
    with open_store(store) as s:
        s.clear()
    return {"clear_s": time.perf_counter() - t0}


def fit_step(snapshot: str, model: str, out: str, options: dict[str, Any]) -> dict[str, Any]:
    """Fit one recommender on the saved snapshot and save it; which arrays it holds afterwards."""
    from kgrec.graph.snapshot import GraphSnapshot
    from kgrec.recommenders.base import FitContext
    from kgrec.recommenders.registry import create, get

    snap = GraphSnapshot.load(snapshot)
    base = rss_mb()
    rec = create(model, **{"seed": 42, **options})
    t0 = time.perf_counter()
    here = Path(out).parent
    members = rec.members(rec.config)
    fitted = {c: get(c).load(here / c, snap) for c in members if (here / c / "model.json").exists()}
    rec.fit(snap, FitContext(fitted=fitted))
    fit_s = time.perf_counter() - t0
    arrays = sorted(_arrays(rec), key=lambda a: -a[1])
    rec.save(out)
    return {"fit_s": fit_s, "snapshot_rss_mb": base, "after_fit_rss_mb": rss_mb(),
            "model_arrays_mb": sum(b for _, b in arrays) / 2**20,
            "largest_arrays": [[name, round(b / 2**20, 1)] for name, b in arrays[:3]]}


def _arrays(obj: Any, prefix: str = "", depth: int = 0, seen: set[int] | None = None) -> list[tuple[str, int]]:
    """(attribute path, bytes) of the numpy and scipy arrays a fitted model holds (not the
    snapshot's, which every model shares)."""
    seen = seen if seen is not None else set()
    out: list[tuple[str, int]] = []
    if id(obj) in seen or depth > 3:
        return out
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [(prefix, obj.nbytes)]
    if sp.issparse(obj):
        return [(prefix, sum(getattr(obj, a).nbytes for a in ("data", "indices", "indptr", "row", "col")
                             if hasattr(obj, a)))]
    items: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple) and len(obj) < 64:
        items = [(str(i), v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(("recommenders", "embeddings")):
        items = [(k, v) for k, v in vars(obj).items() if k not in ("snapshot", "_snapshot")]
    for key, value in items:
        out += _arrays(value, f"{prefix}.{key}" if prefix else key, depth + 1, seen)
    return out


def serve_step(snapshot: str, models: str, names: list[str], store: str, bundle: str,
               requests: int) -> dict[str, Any]:
    """Assemble the bundle from the fitted models, then serve it through the real app
    (Flask test client): p50/p99 of GET /v1/users/{id}/recommendations?k=10 and the RSS."""
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings
    from kgrec.graph.snapshot import GraphSnapshot
    from kgrec.recommenders.bundle.model_bundle import save_bundle
    from kgrec.recommenders.registry import get

    snap = GraphSnapshot.load(snapshot)
    fitted = {n: get(n).load(Path(models) / n, snap) for n in names}
    t0 = time.perf_counter()
    save_bundle(bundle, snap, fitted, overwrite=True)
    save_s = time.perf_counter() - t0
    users = [snap.users.ids[u] for u in np.random.default_rng(7).choice(len(snap.users), size=requests)]
    del fitted, snap
    gc.collect()
    t0 = time.perf_counter()
    app = create_app(Settings.from_env({"KGREC_BUNDLE": bundle, "KGREC_STORE": store}))
    client = app.test_client()
    load_s = time.perf_counter() - t0
    for u in users[:20]:
        client.get(f"/v1/users/{u}/recommendations?k=10")
    ms = []
    for u in users:
        t = time.perf_counter()
        r = client.get(f"/v1/users/{u}/recommendations?k=10")
        ms.append(1000 * (time.perf_counter() - t))
        if r.status_code != 200:
            raise RuntimeError(f"GET recommendations for {u}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    return {"bundle_save_s": save_s, "app_load_s": load_s, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "serving_rss_mb": rss_mb(), "requests": len(ms)}


def batch_step(bundle: str, users: int, workers: int) -> dict[str, Any]:
    """users/s of ``kgrec recommend``'s per-user work over the first ``users`` users: in this
    process with the default threads, with BLAS pinned to 1 thread, and on Ray × ``workers``
    (1 thread each; cluster start and bundle loads timed apart). Outputs are compared."""
    from threadpoolctl import threadpool_limits

    from kgrec.recommenders.batch.batch_tasks import RecommendOptions, recommend_block
    from kgrec.recommenders.batch.engines import LocalEngine, Payload
    from kgrec.recommenders.batch.ray_engine import RayEngine
    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.server_loading import load_server

    t0 = time.perf_counter()
    b = load_server(Path(bundle))
    out: dict[str, Any] = {"bundle_load_s": time.perf_counter() - t0}
    ids = list(b.snapshot.users.ids)[:users]
    out["users"] = len(ids)
    options = RecommendOptions(Query("", 10))
    # With explanations: per-user work worth spreading (the default model serves ranked lists
    # from its fit, so a plain batch is mostly the engine's own overhead).
    explained = RecommendOptions(Query("", 10, explain=True))

    def timed(engine: Any, key: str, opts: RecommendOptions = options) -> list:
        t, cpu = time.perf_counter(), tree_cpu()
        rows = [[(s.item, s.score, s.source) for s in served]
                for _, (served, _known) in engine.run(recommend_block, opts, ids)]
        out[f"{key}_users_per_s"] = len(ids) / (time.perf_counter() - t)
        out[f"{key}_cpu_s"] = tree_cpu() - cpu
        return rows

    local = LocalEngine(Payload(load=load_server, loaded=b))
    list(local.run(recommend_block, options, ids[:50]))  # warm-up: lazy imports, first-touch pages
    expected = timed(local, "local")
    with threadpool_limits(limits=1):
        timed(local, "local_1thread")
        timed(local, "explain_local_1thread", explained)
    del local, b
    gc.collect()
    t0 = time.perf_counter()
    with RayEngine(Payload(load=load_server, directory=Path(bundle)), workers=workers) as ray_engine:
        out["ray_start_s"] = time.perf_counter() - t0
        list(ray_engine.run(recommend_block, options, ids[:50]))
        busy = ray_engine.busy_cpu()
        got = timed(ray_engine, "ray")
        timed(ray_engine, "explain_ray", explained)
        busy = [after - before for before, after in zip(busy, ray_engine.busy_cpu(), strict=True)]
    out["ray_workers"] = workers
    out["identical"] = got == expected
    # Two bounds for an idle machine with `workers` cores, from CPU time (the wall clock of a
    # shared machine measures the other jobs too). Pessimistic: the run takes all the CPU of this
    # process tree (driver, Ray's daemons, workers) spread over the cores; Ray's background work
    # grows with the wall clock, so a loaded machine inflates it. Optimistic: the run takes the
    # busiest worker's CPU inside the block tasks (Ray's own overhead left out).
    out["ray_worker_task_cpu_s"] = busy
    out["idle_estimate_ray_vs_1thread"] = out["local_1thread_cpu_s"] / (out["ray_cpu_s"] / workers)
    out["idle_estimate_tasks_only"] = out["local_1thread_cpu_s"] / max(busy)
    return out


def tree_cpu() -> float:
    """CPU seconds (user + system) used so far by this process and all its descendants."""
    total = 0.0
    me = psutil.Process()
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


STEPS = {"cli": cli_step, "counts": counts_step, "write_csv": write_csv_step, "snapshot": snapshot_step,
         "arrays_snapshot": arrays_snapshot_step, "neo4j_clear": neo4j_clear_step, "fit": fit_step,
         "serve": serve_step, "batch": batch_step}


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2])
    result = STEPS[name](**args)
    result["rss_end_mb"] = rss_mb()
    result["vmhwm_mb"] = vmhwm_mb()
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # skip interpreter teardown of big graphs; the result is printed


if __name__ == "__main__":
    main()
