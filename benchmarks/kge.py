"""KGE benchmark on Last.fm 2K: pick a configuration on a validation cut, then score it.

Protocol (the same split as ``benchmarks/quality.py``, through ``recommenders.splits``):
per-user 80/20 random holdout, seed 42, of users with at least 5 interactions; full
ranking over the catalogue with the user's training items excluded; NDCG@10 and
Recall@10 against the held-out items. Configurations are compared on a second 80/20 cut
of the training part (seed 43), never on the test set. The chosen one is then trained on
the whole training part and scored on the test users next to implicit ALS (``als`` with
its shipped defaults), in the same process.

    # grid (anywhere; on a GPU it is quick) -> JSON with the best configuration
    PYTHONPATH=. python benchmarks/kge.py grid --datasets DIR --device auto --out grid.json
    # final run on the CPU with 2 threads: time, peak RSS, NDCG@10, Recall@10, ALS alongside
    PYTHONPATH=. python benchmarks/kge.py final --datasets DIR --config grid.json --threads 2 --write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sections import write_section

from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.evaluation.offline_evaluation import score_fitted
from kgrec.recommenders.evaluation.splits import random_holdout
from kgrec.recommenders.models.kge import KGE, KGEConfig

K = 10
SEED = 42
VALIDATION_SEED = 43
#: Training on the whole training part: no held-out triples inside KGE itself.
NO_HOLDOUT = {"test_fraction": 0.0, "validation_fraction": 0.0, "early_stopping": False}

#: The grid, most promising first (a time budget may cut the tail). Every point leaves the rest
#: at ``KGEConfig``'s defaults: the shared-negatives loop (1,024 negatives per batch of 1,024)
#: with softmax cross-entropy. ``head_fraction`` 0.5 corrupts heads for half of each batch
#: (the first search), 0 only tails (the default since). The last point is the earlier
#: default (PyKEEN's sLCWA, 32 negatives per positive, self-adversarial NSSA), for comparison.
GRID: list[dict[str, Any]] = [
    {"model": "RotatE", "dim": 64, "epochs": 16},
    {"model": "RotatE", "dim": 64, "epochs": 16, "head_fraction": 0.5},
    {"model": "RotatE", "dim": 64, "epochs": 16, "head_fraction": 0.5, "num_negatives": 2048},
    {"model": "RotatE", "dim": 64, "epochs": 24, "head_fraction": 0.5, "learning_rate": 0.005},
    {"model": "DistMult", "dim": 64, "epochs": 16, "head_fraction": 0.5},
    {"model": "ComplEx", "dim": 64, "epochs": 16, "head_fraction": 0.5},
    {"model": "RotatE", "dim": 128, "epochs": 16},
    {"model": "RotatE", "dim": 64, "epochs": 16, "training_loop": "slcwa", "loss": "nssa", "num_negatives": 32,
     "batch_size": 4096},
]
BASE = {"progress": False, **NO_HOLDOUT}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_lastfm(root: Path) -> GraphSnapshot:
    from kgrec.loaders.lastfm import load

    return build_snapshot(load(root / "lastfm-2k").records)


def _sample(users: list[int], n: int) -> list[int]:
    if len(users) <= n:
        return users
    return sorted(np.random.default_rng(SEED).choice(users, size=n, replace=False).tolist())


def _metrics(ev) -> dict[str, float]:
    m = ev.results[0].metrics
    return {"ndcg@10": m[f"ndcg@{K}"], "recall@10": m[f"recall@{K}"]}


def run_grid(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    snap = load_lastfm(Path(args.datasets))
    split = random_holdout(snap, fraction=0.2, seed=SEED, min_interactions=5)
    val = random_holdout(split.train, fraction=0.2, seed=VALIDATION_SEED, min_interactions=5)
    users = _sample(val.users, args.val_users)
    started = time.perf_counter()
    trials = []
    for point in GRID[args.skip: args.skip + args.limit if args.limit else None]:
        if time.perf_counter() - started > args.budget_s:
            log(f"grid budget of {args.budget_s}s spent; skipping the rest")
            break
        cfg = KGEConfig(**{**BASE, **point, "device": args.device, "seed": SEED})
        if args.epochs:
            cfg = replace(cfg, epochs=args.epochs)
        t0 = time.perf_counter()
        model = KGE(cfg).fit(val.train)
        fit_s = time.perf_counter() - t0
        ev = score_fitted(val, {"kge": (model, fit_s)}, k=K, users=users)
        trial = {"config": point, **_metrics(ev), "fit_seconds": round(fit_s, 2),
                 "epochs_per_second": model.artifact.metrics.get("epochs_per_second"),
                 "device": model.artifact.metrics.get("device")}
        trials.append(trial)
        log(f"{point}: val ndcg@10 {trial['ndcg@10']:.4f} recall@10 {trial['recall@10']:.4f} "
            f"fit {fit_s:.1f}s ({trial['epochs_per_second']} epochs/s on {trial['device']})")
    best = max(trials, key=lambda t: t["ndcg@10"])
    out = {"protocol": "lastfm-2k, validation cut (seed 43) of the seed-42 80/20 training part",
           "validation_users": len(users), "trials": trials, "best": best}
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    log(f"best: {best['config']} ndcg@10 {best['ndcg@10']:.4f}; written to {args.out}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_final(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    point = json.loads(Path(args.config).read_text())["best"]["config"] if args.config else {}
    snap = load_lastfm(Path(args.datasets))
    split = random_holdout(snap, fraction=0.2, seed=SEED, min_interactions=5)
    cfg = KGEConfig(**{**BASE, **point, "device": args.device, "seed": args.train_seed, "progress": True})
    if args.epochs:
        cfg = replace(cfg, epochs=args.epochs)
    log(f"training kge {cfg.model} dim {cfg.dim} for {cfg.epochs} epochs on {args.device}, {args.threads} threads")
    cpu0, t0 = time.process_time(), time.perf_counter()
    model = KGE(cfg).fit(split.train)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_after_kge = peak_rss_mb()

    from kgrec.recommenders.models.mf import ALS

    t1 = time.perf_counter()
    als = ALS(ALS.Config(num_threads=args.threads, seed=args.train_seed)).fit(split.train)
    als_s = time.perf_counter() - t1
    ev = score_fitted(split, {"kge": (model, fit_s), "als": (als, als_s)}, k=K)
    res = {r.name: r for r in ev.results}
    out = {
        "dataset": "lastfm-2k",
        "split": "random 80/20 per user, seed 42, users with >= 5 interactions",
        "users": ev.users, "held_out": ev.held_out,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress",)},
        "kge": {"ndcg@10": res["kge"].metrics[f"ndcg@{K}"], "recall@10": res["kge"].metrics[f"recall@{K}"],
                "train_seconds_wall": round(fit_s, 1), "train_seconds_cpu": round(fit_cpu, 1),
                "epochs_per_second": model.artifact.metrics.get("epochs_per_second"),
                "peak_rss_mb": round(rss_after_kge, 1)},
        "als": {"ndcg@10": res["als"].metrics[f"ndcg@{K}"], "recall@10": res["als"].metrics[f"recall@{K}"],
                "fit_seconds": round(als_s, 1), "config": asdict(als.config)},
        "threads": args.threads, "device": args.device,
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    log(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    if args.write:
        grid = json.loads(Path(args.config).read_text()) if args.config else None
        write_section("kge", to_markdown(out, grid, args.gpu))


def run_speed(args: argparse.Namespace) -> None:
    """Epochs per second of one configuration on ``--device``, training on the full training part."""
    import torch

    torch.set_num_threads(args.threads)
    point = json.loads(Path(args.config).read_text())["best"]["config"] if args.config else {}
    snap = load_lastfm(Path(args.datasets))
    split = random_holdout(snap, fraction=0.2, seed=SEED, min_interactions=5)
    cfg = KGEConfig(**{**BASE, **point, "device": args.device, "seed": SEED, "epochs": args.epochs,
                       "progress": True})
    model = KGE(cfg).fit(split.train)
    m = model.artifact.metrics
    line = {"device": m["device"], "threads": args.threads, "epochs": m["epochs_run"],
            "train_seconds": m["train_seconds"], "epochs_per_second": m["epochs_per_second"],
            "config": point or "defaults", "gpu": torch.cuda.get_device_name(0) if m["device"] == "cuda" else None}
    print(json.dumps(line), flush=True)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


def to_markdown(out: dict[str, Any], grid: dict[str, Any] | None, gpu_path: str | None) -> str:
    k, a, c = out["kge"], out["als"], out["config"]
    lines = [
        f"### KGE on Last.fm 2K (`benchmarks/kge.py`, {out['date']})",
        "",
        f"Split: {out['split']}; {out['users']} test users, {out['held_out']} held-out pairs; full ranking, "
        "training items excluded. Configuration chosen on a validation cut (seed 43) of the training part.",
        "",
        "| model | NDCG@10 | Recall@10 | training (wall) | training (CPU time) | peak RSS |",
        "|---|---|---|---|---|---|",
        f"| kge {c['model']} dim {c['dim']}, {c['epochs']} epochs, {c['training_loop']} {c['loss']} "
        f"{c['num_negatives']} negatives | {k['ndcg@10']:.4f} | {k['recall@10']:.4f} | {k['train_seconds_wall']} s | "
        f"{k['train_seconds_cpu']} s | {k['peak_rss_mb']:.0f} MB |",
        f"| implicit ALS (`als`, shipped defaults) | {a['ndcg@10']:.4f} | {a['recall@10']:.4f} | "
        f"{a['fit_seconds']} s | | |",
        "",
        f"Trained on the CPU with {out['threads']} threads (torch.set_num_threads); machine with "
        f"{out['cpu_count']} cores, load average at the end {', '.join(f'{x:.1f}' for x in out['load_average'])}. "
        "Peak RSS is the whole benchmark process (dataset, snapshot, split, training).",
    ]
    if grid:
        lines += ["", f"Grid (validation NDCG@10 on {grid['validation_users']} users; run on "
                  f"{grid['trials'][0].get('device')}):", "",
                  "| configuration | val NDCG@10 | val Recall@10 | fit s | epochs/s |", "|---|---|---|---|---|"]
        for t in grid["trials"]:
            lines.append(f"| {json.dumps(t['config'])} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | "
                         f"{t['fit_seconds']} | {t['epochs_per_second']} |")
    if gpu_path and Path(gpu_path).is_file():
        lines += ["", Path(gpu_path).read_text(encoding="utf-8").strip()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid")
    f = sub.add_parser("final")
    sp = sub.add_parser("speed")
    sp.add_argument("--config", default=None)
    sp.add_argument("--epochs", type=int, default=5)
    sp.add_argument("--out", default=None, help="append the JSON line here")
    for q in (g, f, sp):
        q.add_argument("--datasets", default=os.environ.get("KGREC_DATASETS", "/work/shared/datasets"))
        q.add_argument("--device", default="auto")
        q.add_argument("--threads", type=int, default=2)
    g.add_argument("--val-users", type=int, default=600)
    g.add_argument("--budget-s", type=float, default=420)
    g.add_argument("--limit", type=int, default=0)
    g.add_argument("--skip", type=int, default=0, help="start at this point of GRID (a grid run in parts)")
    g.add_argument("--out", default="kge-grid.json")
    g.add_argument("--epochs", type=int, default=0, help="override every point's epochs (smoke runs)")
    f.add_argument("--config", default=None, help="grid JSON whose best configuration is trained")
    f.add_argument("--epochs", type=int, default=0, help="override the configuration's epochs")
    f.add_argument("--train-seed", type=int, default=SEED,
                   help="seed of kge's and ALS's training (the split stays seed 42): a seed-variance check")
    f.add_argument("--out", default=None)
    f.add_argument("--gpu", default=None, help="markdown file with the GPU measurement to include")
    f.add_argument("--write", action="store_true", help="write the kge section of benchmarks/RESULTS.md")
    args = p.parse_args()
    {"grid": run_grid, "final": run_final, "speed": run_speed}[args.cmd](args)


if __name__ == "__main__":
    main()
