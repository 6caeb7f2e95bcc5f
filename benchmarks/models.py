"""EASE, Mult-VAE and trust-aware social, measured with the quality protocol.

Same split as ``benchmarks/quality.py`` (per-user 80/20, seed 42, users with ≥ 5
interactions, full ranking, training items excluded, NDCG@10) on Last.fm 2K and
ml-latest-small, plus a validation cut of the training part (seed 43) for choices:

- ``ease``: the peer EASE tuned on validation (its λ grid), kgrec's ``ease`` at that λ and
  item threshold against it (target: within 2 %), and ``ease`` with its shipped defaults;
  the Gram size and fit time of each.
- ``multvae``: shipped defaults, validation and test NDCG@10, fit time.
- ``social`` against popularity on all test users and on users with friends, with the
  two-hop weight and shrinkage ``fit`` chose; the pre-trust social (one hop, no shrinkage)
  beside it; on ml-latest-small (no friendships) with random one-way follows added, and on
  the synthetic directed trust graphs of ``tests/trust_graphs.py`` (trust follows taste, or not).

    PYTHONPATH=. .venv/bin/python benchmarks/models.py --datasets /path/to/datasets
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import PEERS, PeerRecommender
from quality import DATASETS, SEED, VALIDATION_SEED, load_snapshot, log, tune_peer
from sections import write_section

from kgrec.graph.records import Follow
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders import registry
from kgrec.recommenders.evaluation.offline_evaluation import score_fitted
from kgrec.recommenders.evaluation.splits import Split, random_holdout
from kgrec.recommenders.models.ease import EASE
from kgrec.recommenders.models.social import Social
from tests.trust_graphs import MODES, trust_graph

K = 10
#: As in quality.py's defaults: implicit's threads, and validation users for the peer's tuning.
THREADS = 2
MAX_VAL_USERS = 500
#: The social configuration before trust-awareness (one hop, no popularity shrinkage).
ONE_HOP = {"two_hop": 0.0, "shrinkage": 0.0}


def ndcg(split: Split, models: dict[str, tuple], users: list[int] | None = None) -> dict[str, float]:
    ev = score_fitted(split, models, k=K, users=users)
    return {r.name: round(float(r.metrics[f"ndcg@{K}"] or 0.0), 4) for r in ev.results}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fit(name: str, snapshot: GraphSnapshot, **cfg) -> tuple:
    """(model, wall seconds) as ``score_fitted`` takes them; the CPU seconds are in ``CPU``."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    model = registry.create(name, seed=SEED, **cfg).fit(snapshot)
    CPU[id(model)] = cpu_seconds() - c0
    return model, time.perf_counter() - t0


#: CPU seconds of each fit (by model id): wall time is noisy on a shared machine.
CPU: dict[int, float] = {}


def timing(fitted: tuple) -> str:
    return f"{fitted[1]:.1f} / {CPU[id(fitted[0])]:.1f}"


def ease_section(split: Split, val: Split) -> dict:
    params, trials = tune_peer("peer:ease", val, THREADS, MAX_VAL_USERS)
    t0 = time.perf_counter()
    peer = PeerRecommender("peer:ease", PEERS["peer:ease"][0], params, seed=SEED, threads=THREADS).fit(split.train)
    peer_fit = time.perf_counter() - t0
    same = fit("ease", split.train, lam=params["lambda"], min_users=params["min_users"])
    default = fit("ease", split.train)
    scores = ndcg(split, {"peer:ease": (peer, peer_fit), "ease@peer": same, "ease": default})
    out = {"peer_params": params, "peer_trials": trials, "ndcg": scores,
           "ratio_same_lambda": round(scores["ease@peer"] / scores["peer:ease"], 4)}
    for key, (model, seconds) in (("ease@peer", same), ("ease", default)):
        assert isinstance(model, EASE)
        out[key] = {"config": {"lam": model.config.lam, "min_users": model.config.min_users},
                    "gram_items": model.gram_items, "fit_seconds": round(seconds, 1),
                    "fit_cpu_seconds": round(CPU[id(model)], 1)}
    out["peer_fit_seconds"] = round(peer_fit, 1)
    log(f"ease: {scores}")
    return out


def multvae_section(split: Split, val: Split) -> dict:
    on_val = fit("multvae", val.train)
    on_test = fit("multvae", split.train)
    one_thread = fit("multvae", split.train, threads=1)
    out = {"validation_ndcg": ndcg(val, {"multvae": on_val})["multvae"],
           "test_ndcg": ndcg(split, {"multvae": on_test})["multvae"],
           "test_ndcg_one_thread": ndcg(split, {"multvae": one_thread})["multvae"],
           "fit": timing(on_test), "fit_one_thread": timing(one_thread),
           "config": registry.create("multvae").config.__dict__}
    log(f"multvae: {out['validation_ndcg']} (validation), {out['test_ndcg']} (test)")
    return out


def social_section(split: Split) -> dict:
    """Social, one-hop social and popularity on all test users and on those with friends."""
    with_friends = [u for u in split.test if split.train.follows[u].nnz > 0]
    models = {"popularity": fit("popularity", split.train), "social": fit("social", split.train),
              "social-one-hop": fit("social", split.train, **ONE_HOP)}
    social = models["social"][0]
    assert isinstance(social, Social)
    out = {"users": len(split.test), "users_with_friends": len(with_friends), "chosen": social.chosen,
           "fit": timing(models["social"]), "all_users": ndcg(split, models)}
    if with_friends:
        out["users_with_friends_ndcg"] = ndcg(split, models, with_friends)
    log(f"social: {out}")
    return out


def random_follows(snapshot_records, mean: float, seed: int) -> None:
    """Add one-way follows to uniformly random users (geometric out-degree, mean ``mean``)."""
    rng = np.random.default_rng(seed)
    ids = [u.id for u in snapshot_records.users]
    edges = {}
    for i, uid in enumerate(ids):
        n = min(len(ids) - 1, int(rng.geometric(1.0 / mean)))
        others = rng.choice(len(ids) - 1, size=n, replace=False)
        for j in (o + (o >= i) for o in others.tolist()):
            edges[uid, ids[j]] = Follow(uid, ids[j], 1.0)
    snapshot_records.follows = list(edges.values())


def run_dataset(root: Path, name: str, out: Path) -> dict:
    log(f"{name}: loading")
    snap = load_snapshot(root, name)
    split = random_holdout(snap, fraction=0.2, seed=SEED, min_interactions=5)
    val = random_holdout(split.train, fraction=0.2, seed=VALIDATION_SEED, min_interactions=5)
    result = {"dataset": name, "counts": snap.counts, "load": Path("/proc/loadavg").read_text().split()[:3],
              "ease": ease_section(split, val),
              "multvae": multvae_section(split, val), "social": social_section(split)}
    if snap.follows.nnz == 0:
        from kgrec.loaders.lastfm import load as load_lastfm
        from kgrec.loaders.movielens import load as load_movielens

        records = (load_lastfm if DATASETS[name] == "lastfm" else load_movielens)(root / name).records
        random_follows(records, mean=3.0, seed=SEED)
        planted = random_holdout(build_snapshot(records), fraction=0.2, seed=SEED, min_interactions=5)
        result["social_random_follows"] = social_section(planted)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"models-{name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def run_trust_graphs(out: Path) -> dict:
    result = {}
    for mode in MODES:
        split = random_holdout(build_snapshot(trust_graph(mode).records), fraction=0.2, seed=SEED, min_interactions=5)
        result[mode] = social_section(split)
    (out / "models-trust-graphs.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def section(results: list[dict], trust: dict | None) -> str:
    loads = ", ".join(f"{r['dataset']} {' / '.join(r['load'])}" for r in results)
    lines = [
        f"Produced by `benchmarks/models.py` on {time.strftime('%Y-%m-%d')} on the 2-core machine shared with "
        f"other jobs (load averages 1/5/15 min at the start: {loads}), so fit times are given as wall / CPU "
        "seconds and the CPU figure is the steadier one. Protocol of `benchmarks/quality.py`: per-user 80/20 "
        "holdout (seed 42), users with ≥ 5 interactions, full ranking, NDCG@10; choices on a validation cut of "
        "the training part (seed 43). Raw numbers: `benchmarks/results/models-*.json`.",
        "",
        "| dataset | peer EASE (λ from validation) | kgrec `ease` at that λ | ratio | `ease` defaults (λ 150) "
        "| Gram items | `ease` fit s | `multvae` validation | `multvae` test | `multvae` fit s (torch threads) "
        "| `multvae` fit s (1 thread) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        e, m = r["ease"], r["multvae"]
        lines.append(
            f"| {r['dataset']} | {e['ndcg']['peer:ease']:.4f} (λ {e['peer_params']['lambda']:g}) | "
            f"{e['ndcg']['ease@peer']:.4f} | {e['ratio_same_lambda']:.3f} | {e['ndcg']['ease']:.4f} | "
            f"{e['ease']['gram_items']:,} | {e['ease']['fit_seconds']} / {e['ease']['fit_cpu_seconds']} | "
            f"{m['validation_ndcg']:.4f} | {m['test_ndcg']:.4f} | {m['fit']} | {m['fit_one_thread']} |")
    lines += ["", "Social (trust-aware, two-hop weight and shrinkage chosen in `fit`) against popularity and "
              "the one-hop social it replaces, NDCG@10:", "",
              "| graph | users (with friends) | chosen | social: all / with friends | one-hop social: all / with "
              "friends | popularity: all / with friends |", "|---|---|---|---|---|---|"]
    rows = [(r["dataset"], r["social"]) for r in results]
    rows += [(f"{r['dataset']} + random one-way follows", r["social_random_follows"])
             for r in results if "social_random_follows" in r]
    rows += [(f"synthetic directed trust, {mode}", s) for mode, s in (trust or {}).items()]
    for label, s in rows:
        a, f = s["all_users"], s.get("users_with_friends_ndcg", {})
        def pair(model: str, a: dict = a, f: dict = f) -> str:
            return f"{a[model]:.4f} / {f[model]:.4f}" if f else f"{a[model]:.4f} / –"
        chosen = f"w {s['chosen']['two_hop']:g}, κ {s['chosen']['shrinkage']:g}" if f else "– (no follows)"
        lines.append(f"| {label} | {s['users']} ({s['users_with_friends']}) | {chosen} | {pair('social')} | "
                     f"{pair('social-one-hop')} | {pair('popularity')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding lastfm-2k/ and ml-latest-small/")
    ap.add_argument("--only", choices=sorted(DATASETS), action="append", help="run only this dataset (repeatable)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--no-results-md", action="store_true", help="do not rewrite RESULTS.md")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the RESULTS.md section from --out")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    if not a.report_only:
        for d in a.only or list(DATASETS):
            run_dataset(a.datasets, d, a.out)
        run_trust_graphs(a.out)
    saved = [a.out / f"models-{d}.json" for d in DATASETS]
    trust_file = a.out / "models-trust-graphs.json"
    text = section([json.loads(p.read_text(encoding="utf-8")) for p in saved if p.is_file()],
                   json.loads(trust_file.read_text(encoding="utf-8")) if trust_file.is_file() else None)
    print(text)
    if not a.no_results_md:
        write_section("models", text)


if __name__ == "__main__":
    main()
