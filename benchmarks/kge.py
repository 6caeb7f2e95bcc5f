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

from graph.snapshot import GraphSnapshot, build_snapshot
from recommenders.evaluation import score_fitted
from recommenders.kge import KGE, KGEConfig
from recommenders.splits import random_holdout

K = 10
SEED = 42
VALIDATION_SEED = 43
#: Training on the whole training part: no held-out triples inside KGE itself.
NO_HOLDOUT = {"test_fraction": 0.0, "validation_fraction": 0.0, "early_stopping": False}

#: The grid, most promising first (a time budget may cut the tail).
GRID: list[dict[str, Any]] = [
    {"model": "DistMult", "dim": 64, "epochs": 40, "loss": "crossentropy", "num_negatives": 32},
    {"model": "RotatE", "dim": 64, "epochs": 40, "loss": "nssa", "num_negatives": 32},
    {"model": "ComplEx", "dim": 64, "epochs": 40, "loss": "crossentropy", "num_negatives": 32},
    {"model": "DistMult", "dim": 64, "epochs": 40, "loss": "crossentropy", "num_negatives": 32,
     "drop": ("HAS_TAG", "USES_TAG")},
    {"model": "DistMult", "dim": 64, "epochs": 40, "loss": "crossentropy", "training_loop": "lcwa",
     "batch_size": 512},
    {"model": "TransE", "dim": 64, "epochs": 40, "loss": "nssa", "num_negatives": 32},
    {"model": "DistMult", "dim": 128, "epochs": 40, "loss": "crossentropy", "num_negatives": 64},
    {"model": "RotatE", "dim": 128, "epochs": 40, "loss": "nssa", "num_negatives": 64},
    {"model": "ComplEx", "dim": 128, "epochs": 40, "loss": "crossentropy", "num_negatives": 64},
    {"model": "DistMult", "dim": 64, "epochs": 80, "loss": "crossentropy", "num_negatives": 32},
    {"model": "DistMult", "dim": 64, "epochs": 40, "loss": "softplus", "num_negatives": 32},
]
BASE = {"training_loop": "slcwa", "batch_size": 4096, "learning_rate": 0.01, "progress": False, **NO_HOLDOUT}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_lastfm(root: Path) -> GraphSnapshot:
    from loaders.lastfm import load

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
    for point in GRID[: args.limit or None]:
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
    cfg = KGEConfig(**{**BASE, **point, "device": args.device, "seed": SEED, "progress": True})
    if args.epochs:
        cfg = replace(cfg, epochs=args.epochs)
    log(f"training kge {cfg.model} dim {cfg.dim} for {cfg.epochs} epochs on {args.device}, {args.threads} threads")
    cpu0, t0 = time.process_time(), time.perf_counter()
    model = KGE(cfg).fit(split.train)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_after_kge = peak_rss_mb()

    from recommenders.mf import ALS

    t1 = time.perf_counter()
    als = ALS(ALS.Config(num_threads=args.threads, seed=SEED)).fit(split.train)
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


def run_report(args: argparse.Namespace) -> None:
    """Compose the RESULTS.md section from the JSON files of the grid, final and speed runs."""
    d = Path(args.dir)
    grid = json.loads((d / "grid.json").read_text())
    finals = sorted((json.loads(p.read_text()) for p in d.glob("final*.json") if "cpu" not in p.name),
                    key=lambda f: -f["config"]["epochs"])
    cpu = json.loads((d / "final-cpu1.json").read_text()) if (d / "final-cpu1.json").is_file() else None
    speed = [json.loads(x) for x in (d / "speed.jsonl").read_text().splitlines()]
    cpu_eps = next(r["epochs_per_second"] for r in speed if r["device"] == "cpu")
    gpu = next(r for r in speed if r["device"] == "cuda")
    f0 = finals[0]
    c = f0["config"]
    lines = [
        f"### KGE on Last.fm 2K (`benchmarks/kge.py`, {f0['date']})",
        "",
        f"Split: {f0['split']} (`recommenders.splits.random_holdout`, as `benchmarks/quality.py`); "
        f"{f0['users']} test users, {f0['held_out']} held-out pairs; full ranking, training items excluded; "
        "binary relevance. The configuration was chosen on a validation cut (seed 43) of the training part, "
        "never on the test set.",
        "",
        f"Chosen: **{c['model']}**, dim {c['dim']}, {c['training_loop']} with {c['num_negatives']} negatives, "
        f"{c['loss']} loss, Adam lr {c['learning_rate']}, batch {c['batch_size']}, trained on the whole training "
        "part (no triples held out inside KGE).",
        "",
        "| model | epochs | NDCG@10 | Recall@10 | training on 2 CPU cores |",
        "|---|---|---|---|---|",
    ]
    for f in finals:
        k = f["kge"]
        e = f["config"]["epochs"]
        minutes = e / cpu_eps / 60
        lines.append(f"| kge {f['config']['model']} | {e} | {k['ndcg@10']:.4f} | {k['recall@10']:.4f} | "
                     f"{minutes:.1f} min (estimated: {e} epochs at {cpu_eps} epochs/s) |")
    a = f0["als"]
    lines.append(f"| implicit ALS (`als` defaults of that run: confidence {a['config']['confidence']}, alpha "
                 f"{a['config']['alpha']}) | {a['config']['iterations']} iterations | "
                 f"{a['ndcg@10']:.4f} | {a['recall@10']:.4f} | {a['fit_seconds']} s |")
    if cpu:
        b = cpu["als"]
        lines.append(f"| implicit ALS (`als` defaults now: confidence {b['config']['confidence']}, alpha "
                     f"{b['config']['alpha']}; CPU run here) | {b['config']['iterations']} iterations | "
                     f"{b['ndcg@10']:.4f} | {b['recall@10']:.4f} | {b['fit_seconds']} s |")
    lines += [
        "",
        "How these were measured, plainly:",
        f"- The NDCG/Recall rows were trained on the GPU machine ({gpu['gpu']}) because the 2 shared cores of "
        "the development machine were oversubscribed by other work (load average above 10); the same "
        "configuration and seed on the CPU gives a different but equivalent model, not bit-identical scores.",
        f"- Training time on 2 CPU cores: {cpu_eps} epochs/s measured by training 2 epochs with "
        "`taskset -c 0,1` and `torch.set_num_threads(2)` on that machine's CPU (`benchmarks/kge_gpu.sh`), "
        f"so 40 epochs take about {40 / cpu_eps / 60:.0f} minutes: over the 10-minute budget. The shipped "
        f"default (`kgrec train --models kge`) therefore trains 16 epochs (about {16 / cpu_eps / 60:.1f} "
        "minutes); on a GPU use `--epochs 40`.",
        "- Against ALS: KGE beat the ALS defaults of its own run (BM25 confidence, alpha 1), but the ALS "
        "defaults were retuned afterwards (binary confidence, alpha 10), and the current ALS scores higher "
        "than both KGE rows on the same split. **The target NDCG@10(kge) >= NDCG@10(ALS) is met only against "
        "the older ALS default, not the current one.** The GPU budget of this session was spent, so KGE was "
        "not retuned against it (more epochs, larger dim, and the rest of the grid are the next steps).",
        f"- Peak RSS of the whole benchmark process (dataset, snapshot, split, training, ALS, scoring): "
        f"{max(f['kge']['peak_rss_mb'] for f in finals):.0f} MB in the GPU runs"
        + (f"; {cpu['kge']['peak_rss_mb']:.0f} MB training on the CPU here "
           f"({cpu['kge']['train_seconds_cpu']} s of CPU time for one epoch)" if cpu else "")
        + ". Budget: 4 GB.",
        "",
        f"Grid (validation NDCG@10 / Recall@10 on {grid['validation_users']} users; trained on "
        f"{grid['trials'][0].get('device')}, time-boxed, so the grid stopped after {len(grid['trials'])} points):",
        "",
        "| configuration | val NDCG@10 | val Recall@10 | fit s (GPU) |",
        "|---|---|---|---|",
    ]
    for t in grid["trials"]:
        cfg = ", ".join(f"{k}={v}" for k, v in t["config"].items())
        lines.append(f"| {cfg} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['fit_seconds']} |")
    lines += ["", "GPU speed (`benchmarks/kge_gpu.sh`, one prepared run):", ""]
    lines += [x for x in (d / "gpu.md").read_text().splitlines() if not x.startswith("Epochs/s of")]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("kge", text)


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
    rp = sub.add_parser("report")
    rp.add_argument("--dir", required=True, help="folder with grid.json, final*.json, speed.jsonl, gpu.md")
    rp.add_argument("--write", action="store_true")
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
    g.add_argument("--out", default="kge-grid.json")
    g.add_argument("--epochs", type=int, default=0, help="override every point's epochs (smoke runs)")
    f.add_argument("--config", default=None, help="grid JSON whose best configuration is trained")
    f.add_argument("--epochs", type=int, default=0, help="override the configuration's epochs")
    f.add_argument("--out", default=None)
    f.add_argument("--gpu", default=None, help="markdown file with the GPU measurement to include")
    f.add_argument("--write", action="store_true", help="write the kge section of benchmarks/RESULTS.md")
    args = p.parse_args()
    {"grid": run_grid, "final": run_final, "speed": run_speed, "report": run_report}[args.cmd](args)


if __name__ == "__main__":
    main()
