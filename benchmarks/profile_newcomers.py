"""Newcomers known only by their profile: NDCG@10 of the ``profile`` model against global popularity
and popularity within the user's gender × age band.

Protocol (the issue's): 20 % of the users are held out whole (seeded); the models are fitted on
the graph without the held-out users' interactions (their attributes stay); each held-out user is
scored from their attributes alone, against all their items. Datasets: the MovieLens-100K-shaped
synthetic graph of ``tests/profile_graphs.py`` (calibrated so that band popularity is about 1.07×
global, as measured on a real movie dataset with profiles), the small planted graph of the tests,
and any MovieLens 100K / 1M folder given with ``--movielens`` (kept out of the repository).

    python benchmarks/profile_newcomers.py [--movielens DIR ...] [--large] [--seeds 42 43 44] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def newcomer_ndcg(snapshot, seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
    from kgrec.recommenders.registry import create

    rng = np.random.default_rng(seed)
    users = np.flatnonzero(np.diff(snapshot.interactions.indptr) > 0)
    held = np.sort(rng.choice(users, size=len(users) // 5, replace=False))
    keep = np.ones(len(snapshot.users), dtype=bool)
    keep[held] = False
    m = snapshot.interactions.multiply(keep[:, None]).tocsr()
    m.eliminate_zeros()
    train = snapshot.with_interactions(m)
    started = time.perf_counter()
    profile = create("profile", seed=seed).fit(train)
    fit_s = time.perf_counter() - started
    y = train.interactions
    counts = np.bincount(y.indices, minlength=len(snapshot.items)).astype(float)
    kinds = np.array(snapshot.attribute_kinds, dtype=object)
    band_cols = np.flatnonzero((kinds == "gender") | (kinds == "age"))
    ua = snapshot.user_attributes

    def band(u: int) -> tuple[int, ...]:
        return tuple(sorted(set(ua.indices[ua.indptr[u]:ua.indptr[u + 1]].tolist()) & set(band_cols.tolist())))

    groups: dict[tuple[int, ...], list[int]] = {}
    for u in np.setdiff1d(users, held).tolist():
        groups.setdefault(band(u), []).append(u)
    band_pop = {key: np.bincount(y[members].indices, minlength=len(snapshot.items)) + 1e-9 * counts
                for key, members in groups.items()}
    lists: dict[str, list[np.ndarray]] = {"global popularity": [], "band popularity": [], "profile": []}
    targets = []
    for u in held.tolist():
        attrs = [snapshot.attributes.ids[a] for a in ua.indices[ua.indptr[u]:ua.indptr[u + 1]]]
        scores = profile.score_profile(attrs, None)
        lists["global popularity"].append(np.argsort(-counts, kind="stable")[:10])
        lists["band popularity"].append(np.argsort(-band_pop.get(band(u), counts), kind="stable")[:10])
        lists["profile"].append(np.argsort(-(scores if scores is not None else counts), kind="stable")[:10])
        targets.append(snapshot.user_items(u))
    out = {name: float(ndcg_of_lists(ranked, targets, 10).mean()) for name, ranked in lists.items()}
    out["fit_s"] = fit_s
    out["chosen"] = profile.manifest_entry() or {}
    return out


def datasets(movielens: list[Path], large: bool):  # type: ignore[no-untyped-def]
    from kgrec.graph.snapshot import build_snapshot
    from tests.profile_graphs import movielens_like, planted_profiles

    yield "MovieLens-100K-shaped synthetic", build_snapshot(movielens_like())
    yield "planted profiles (tests)", build_snapshot(planted_profiles())
    if large:
        yield "MovieLens-1M-shaped synthetic", build_snapshot(movielens_like(users=6040, items=3706, mean_items=165))
    for path in movielens:
        from kgrec.loaders import movielens as ml

        yield f"{path.name}", build_snapshot(ml.load(path).records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movielens", type=Path, nargs="*", default=[], help="MovieLens 100K or 1M folders")
    ap.add_argument("--seeds", type=int, nargs="*", default=[42, 43, 44])
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--large", action="store_true", help="also a MovieLens-1M-shaped synthetic graph (6,040 users)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows, report = [], {}
    for name, snapshot in datasets(args.movielens, args.large):
        runs = [newcomer_ndcg(snapshot, seed) for seed in args.seeds]
        mean = {k: float(np.mean([r[k] for r in runs])) for k in ("global popularity", "band popularity", "profile")}
        fit = float(np.mean([r["fit_s"] for r in runs]))
        g = mean["global popularity"]
        rows.append(f"| {name} | {len(snapshot.users):,} | {g:.4f} | {mean['band popularity']:.4f} "
                    f"({mean['band popularity'] / g:.3f}×) | **{mean['profile']:.4f} ({mean['profile'] / g:.3f}×)** "
                    f"| {fit:.1f} |")
        report[name] = {"mean": mean, "runs": runs}
        print(rows[-1], file=sys.stderr)
    print(f"Newcomers (20 % of users held out whole, attributes only), NDCG@10, mean of seeds {args.seeds}; "
          f"1-minute load average {load:.1f} at the start.\n")
    print("| dataset | users | global popularity | gender × age band popularity | profile | profile fit s |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
