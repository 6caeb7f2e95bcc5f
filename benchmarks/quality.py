"""Quality benchmark: kgrec's recommenders against tuned peers on Last.fm 2K and ml-latest-small.

Protocol (issue 3): per-user 80/20 random holdout with seed 42 of users with at least 5
interactions; full ranking over the catalogue with the user's training items excluded;
binary relevance of the held-out items; metrics at k = 10. Taggings of held-out pairs are
removed from the training graph (``recommenders.splits``).

Peers (``benchmarks/peers.py``) are tuned on a validation cut of the training part (a
second 80/20 holdout, seed 43) with a small grid, by NDCG@10, then refitted on the whole
training part. kgrec's recommenders run with their shipped defaults (what ``kgrec train``
without options fits); the hybrid learns its ranker on its own validation cut inside
``fit``. Nothing is tuned on the test set.

    PYTHONPATH=. .venv/bin/python benchmarks/quality.py --datasets /path/to/datasets
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PEERS, PeerRecommender
from sections import write_section

from graph.snapshot import GraphSnapshot, build_snapshot
from recommenders import registry
from recommenders.evaluation import Evaluation, ModelResult, score_fitted
from recommenders.report import save_plot, to_markdown
from recommenders.splits import Split, random_holdout

K = 10
SEED = 42
VALIDATION_SEED = 43
DATASETS = {"lastfm-2k": "lastfm", "ml-latest-small": "movielens"}
KGREC_MODELS = (
    "popularity", "itemcf", "usercf", "content", "association", "als", "bpr", "graph_walk", "social", "ease", "multvae",
    "hybrid",
)


def load_snapshot(root: Path, name: str) -> GraphSnapshot:
    if DATASETS[name] == "lastfm":
        from loaders.lastfm import load
    else:
        from loaders.movielens import load
    return build_snapshot(load(root / name).records)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tune_peer(name: str, val: Split, threads: int, max_users: int) -> tuple[dict, list[dict]]:
    """Pick the grid point with the best validation NDCG@10."""
    fit_fn, grid = PEERS[name]
    users = val.users
    if len(users) > max_users:
        users = sorted(np.random.default_rng(SEED).choice(users, size=max_users, replace=False).tolist())
    trials = []
    for params in grid:
        model = PeerRecommender(name, fit_fn, params, seed=SEED, threads=threads)
        t0 = time.perf_counter()
        model.fit(val.train)
        ev = score_fitted(val, {name: (model, time.perf_counter() - t0)}, k=K, users=users)
        trials.append({"params": params, "ndcg@10": ev.results[0].metrics[f"ndcg@{K}"]})
        log(f"  {name} {params}: validation ndcg@10 {trials[-1]['ndcg@10']:.4f}")
    best = max(trials, key=lambda t: t["ndcg@10"])
    return best["params"], trials


def run_dataset(root: Path, name: str, models: list[str], peers: list[str], threads: int,
                max_val_users: int, out: Path) -> dict:
    log(f"{name}: loading")
    snap = load_snapshot(root, name)
    split = random_holdout(snap, fraction=0.2, seed=SEED, min_interactions=5)
    val = random_holdout(split.train, fraction=0.2, seed=VALIDATION_SEED, min_interactions=5)
    log(f"{name}: {snap.counts}; {len(split.test)} test users, {split.held_out_pairs()} held-out pairs")

    fitted = {}
    tuning = {}
    for peer in peers:
        params, trials = tune_peer(peer, val, threads, max_val_users)
        tuning[peer] = {"chosen": params, "trials": trials}
        model = PeerRecommender(peer, PEERS[peer][0], params, seed=SEED, threads=threads)
        t0 = time.perf_counter()
        model.fit(split.train)
        fitted[peer] = (model, time.perf_counter() - t0)
        log(f"{peer}: chose {params}")
    for m in models:
        if m not in registry.REGISTRY:
            log(f"{m}: not registered, skipped")
            continue
        model = registry.create(m, seed=SEED)
        t0 = time.perf_counter()
        model.fit(split.train)
        fitted[m] = (model, time.perf_counter() - t0)
        log(f"{m}: fitted in {fitted[m][1]:.1f}s")
    ev = score_fitted(split, fitted, k=K, progress=log)

    with_friends = [u for u in split.test if split.train.follows[u].nnz > 0]
    social_ev = None
    if with_friends and "social" in fitted and "popularity" in fitted:
        social_ev = score_fitted(split, {m: fitted[m] for m in ("popularity", "social")}, k=K, users=with_friends)

    out.mkdir(parents=True, exist_ok=True)
    save_plot(ev, out / f"quality-{name}.png")
    result = {
        "dataset": name,
        "counts": snap.counts,
        "evaluation": ev.to_dict(),
        "tuning": tuning,
        "users_with_friends": len(with_friends),
        "social_on_users_with_friends": social_ev.to_dict() if social_ev else None,
        "targets": targets(ev, social_ev, peers),
    }
    (out / f"quality-{name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _ndcg(r: ModelResult) -> float:
    return float(r.metrics[f"ndcg@{K}"] or 0.0)


def targets(ev: Evaluation, social_ev: Evaluation | None, peers: list[str]) -> dict:
    by_name = {r.name: r for r in ev.results}
    peer_results = [by_name[p] for p in peers if p in by_name]
    if not peer_results:
        return {}
    best = max(peer_results, key=_ndcg)
    out: dict = {"best_peer": best.name, "best_peer_ndcg@10": _ndcg(best)}
    if "graph_walk" in by_name:
        out["graph_walk_vs_best_peer"] = _ndcg(by_name["graph_walk"]) / _ndcg(best)
        out["graph_walk_target_met"] = out["graph_walk_vs_best_peer"] >= 1.0
    if "hybrid" in by_name:
        out["hybrid_vs_best_peer"] = _ndcg(by_name["hybrid"]) / _ndcg(best)
        out["hybrid_target_met"] = out["hybrid_vs_best_peer"] >= 1.10
    if social_ev is not None:
        s = {r.name: _ndcg(r) for r in social_ev.results}
        out["social_ndcg_users_with_friends"] = s["social"]
        out["popularity_ndcg_users_with_friends"] = s["popularity"]
        out["social_target_met"] = s["social"] > s["popularity"]
    return out


def section(results: list[dict], threads: int) -> str:
    """The RESULTS.md text for saved results (one dict per dataset, as written to JSON)."""
    lines = [
        f"Produced by `benchmarks/quality.py` on {time.strftime('%Y-%m-%d')} "
        f"({threads} thread(s) for implicit; the 2-core machine was shared with other jobs).",
        "",
        "Protocol: per-user 80/20 random holdout (seed 42) of users with ≥ 5 interactions, full ranking "
        "over the catalogue with training items excluded, binary relevance, k = 10; taggings of held-out "
        "pairs removed from training. Peers (`peer:*`) tuned by validation NDCG@10 on a second 80/20 cut "
        "of the training part (seed 43); kgrec models with their shipped defaults. "
        "Raw numbers: `benchmarks/results/quality-*.json`.",
    ]
    for res in results:
        ev = Evaluation.from_dict(res["evaluation"])
        lines += ["", f"### {res['dataset']}", "", to_markdown(ev).strip(), ""]
        t = res["targets"]
        if t:
            lines.append(f"Best peer: `{t['best_peer']}` (NDCG@10 {t['best_peer_ndcg@10']:.4f}).")
            if "graph_walk_vs_best_peer" in t:
                lines.append(f"- graph_walk / best peer = {t['graph_walk_vs_best_peer']:.3f} "
                             f"(target ≥ 1.00: {'met' if t['graph_walk_target_met'] else 'missed'})")
            if "hybrid_vs_best_peer" in t:
                lines.append(f"- hybrid / best peer = {t['hybrid_vs_best_peer']:.3f} "
                             f"(target ≥ 1.10: {'met' if t['hybrid_target_met'] else 'missed'})")
            if "social_target_met" in t:
                lines.append(f"- users with ≥ 1 friend: social NDCG@10 {t['social_ndcg_users_with_friends']:.4f} vs "
                             f"popularity {t['popularity_ndcg_users_with_friends']:.4f} "
                             f"({'met' if t['social_target_met'] else 'missed'})")
        if res["users_with_friends"] == 0:
            lines.append("- no FOLLOWS in this dataset: social has no friends to draw on (no social comparison)")
        chosen = {p: v["chosen"] for p, v in res["tuning"].items()}
        lines.append("- peer settings chosen on validation: " + "; ".join(f"{p} {c}" for p, c in chosen.items()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding lastfm-2k/ and ml-latest-small/")
    ap.add_argument("--only", choices=sorted(DATASETS), action="append", help="run only this dataset (repeatable)")
    ap.add_argument("--models", default=",".join(KGREC_MODELS), help="kgrec recommenders to include")
    ap.add_argument("--peers", default=",".join(PEERS), help="peers to include")
    ap.add_argument("--threads", type=int, default=2, help="threads for implicit")
    ap.add_argument("--max-val-users", type=int, default=500, help="validation users used for tuning")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--no-results-md", action="store_true", help="do not rewrite RESULTS.md")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the RESULTS.md section from --out")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    models = [m for m in a.models.split(",") if m]
    peers = [p for p in a.peers.split(",") if p]
    for d in [] if a.report_only else a.only or list(DATASETS):
        run_dataset(a.datasets, d, models, peers, a.threads, a.max_val_users, a.out)
    # every dataset's latest saved result, so separate runs (one per dataset) make one section
    saved = [a.out / f"quality-{d}.json" for d in DATASETS]
    text = section([json.loads(p.read_text(encoding="utf-8")) for p in saved if p.is_file()], a.threads)
    print(text)
    if not a.no_results_md:
        write_section("quality", text)


if __name__ == "__main__":
    main()
