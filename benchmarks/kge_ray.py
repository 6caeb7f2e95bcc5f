"""KGE trained in one process and data-parallel on Ray Train: quality and epochs/s.

Same protocol as ``benchmarks/kge.py`` (Last.fm 2K, per-user 80/20 random holdout, seed 42,
users with ≥ 5 interactions, full ranking, NDCG@10 and Recall@10 on the test users), the
shipped kge configuration with the same epochs for every run, trained on the whole training
part (no held-out triples inside KGE). Runs (``--runs``, comma-separated):

- ``local``: ``pykeen.pipeline`` in this process, torch with ``--threads`` threads
  (``local-gpu``: on CUDA);
- ``ray-N``: ``--engine ray`` with N workers of ``--threads / N`` CPUs (at least 1) each,
  on a local Ray cluster (or ``RAY_ADDRESS``); ``ray-NxT``: N workers of T CPUs each
  (``ray-1x1`` against ``ray-2x1`` is the data-parallel speed-up at equal threads per
  worker); ``ray-N-gpu`` puts each worker on a GPU.

epochs/s counts the training loop only (``metrics.epochs_per_second``); wall time adds Ray's
start (cluster, workers, process group) and the test-cut evaluation.

    PYTHONPATH=. .venv/bin/python benchmarks/kge_ray.py --runs local,ray-1,ray-2 --write
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kge import BASE, SEED, K, load_lastfm, log
from sections import write_section

from kgrec.recommenders.evaluation.offline_evaluation import score_fitted
from kgrec.recommenders.evaluation.splits import random_holdout
from kgrec.recommenders.models.kge import KGE, KGEConfig


def run_config(run: str, epochs: int, threads: int) -> KGEConfig:
    """The configuration of one named run."""
    cfg = KGEConfig(**{**BASE, "seed": SEED, "progress": True})
    cfg = replace(cfg, epochs=epochs) if epochs else cfg
    parts = run.split("-")
    gpu = parts[-1] == "gpu"
    if parts[0] == "local":
        return replace(cfg, device="cuda" if gpu else "cpu")
    workers, _, per = parts[1].partition("x")
    n = int(workers)
    return replace(cfg, engine="ray", workers=n, worker_cpus=int(per) if per else max(1, threads // n),
                   device="cuda" if gpu else "cpu")


def measure(run: str, split: Any, epochs: int, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    cfg = run_config(run, epochs, threads)
    log(f"{run}: {cfg.model} dim {cfg.dim}, {cfg.epochs} epochs, engine {cfg.engine} × {cfg.workers}")
    t0 = time.perf_counter()
    model = KGE(cfg).fit(split.train)
    wall = time.perf_counter() - t0
    ev = score_fitted(split, {"kge": (model, wall)}, k=K)
    m, r = model.artifact.metrics, ev.results[0].metrics
    row = {"run": run, "engine": cfg.engine, "workers": cfg.workers,
           "threads_per_worker": m.get("threads_per_worker", threads), "device": m.get("device"),
           "epochs": m["epochs_run"], "train_seconds": m["train_seconds"], "epochs_per_second": m["epochs_per_second"],
           "wall_seconds": round(wall, 1), "ndcg@10": r[f"ndcg@{K}"], "recall@10": r[f"recall@{K}"],
           "replica_max_abs_diff": m.get("replica_max_abs_diff"), "worker_cpu_seconds": m.get("worker_cpu_seconds"),
           "load_average": os.getloadavg()}
    log(json.dumps(row))
    return row


def to_markdown(rows: list[dict[str, Any]], users: int, date: str) -> str:
    base = next((r for r in rows if r["engine"] == "local"), rows[0])
    lines = [
        f"### KGE data-parallel on Ray Train (`benchmarks/kge_ray.py`, {date})",
        "",
        f"Last.fm 2K, the kge protocol (random 80/20 per user, seed 42; {users} test users), shipped "
        f"configuration (RotatE dim 64, shared negatives, batch 1,024) with {base['epochs']} epochs in every run, "
        f"training seed {SEED}. {os.cpu_count()} cores shared with other work: the load average (1 min) is "
        "given per run; above about 2 the times are upper bounds.",
        "",
        "| run | workers × threads | device | epochs/s | × local | train s | wall s | NDCG@10 | Recall@10 "
        "| replicas differ by | load avg |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["epochs_per_second"] / base["epochs_per_second"] if base["epochs_per_second"] else float("nan")
        diff = "" if r["replica_max_abs_diff"] is None else f"{r['replica_max_abs_diff']:.1e}"
        lines.append(f"| {r['run']} | {r['workers']} × {r['threads_per_worker']} | {r['device']} | "
                     f"{r['epochs_per_second']:.4f} | {ratio:.2f} | {r['train_seconds']:.1f} | "
                     f"{r['wall_seconds']:.1f} | "
                     f"{r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {diff} | {r['load_average'][0]:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=os.environ.get("KGREC_DATASETS", "/work/shared/datasets"))
    p.add_argument("--runs", default="local,ray-1,ray-2")
    p.add_argument("--epochs", type=int, default=0, help="override the shipped epochs (0: keep them)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all (shared by a run's workers)")
    p.add_argument("--out", default=None, help="append each run's JSON line here")
    p.add_argument("--write", action="store_true", help="write the kge-ray section of benchmarks/RESULTS.md")
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    p.add_argument("--report-only", action="store_true", help="render the runs already in --out (no training)")
    a = p.parse_args()
    split = random_holdout(load_lastfm(Path(a.datasets)), fraction=0.2, seed=SEED, min_interactions=5)
    rows = []
    if a.report_only:
        rows = [json.loads(x) for x in Path(a.out).read_text(encoding="utf-8").splitlines() if x.strip()]
    for run in [] if a.report_only else a.runs.split(","):
        rows.append(measure(run, split, a.epochs, a.threads))
        if a.out:
            with open(a.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rows[-1]) + "\n")
    text = to_markdown(rows, len(split.users), time.strftime("%Y-%m-%d"))
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text + "\n", encoding="utf-8")
    if a.write:
        write_section("kge-ray", text)


if __name__ == "__main__":
    main()
