"""Warm-started retraining against cold training (issue 19, item 5), on Last.fm 2K and ml-latest-small.

Protocol (the prototype's, on kgrec's own code):

1. *full* = the dataset as kgrec loads it; kgrec's validation cut of it (``validation_cut``,
   seed 43: a per-user 20 % holdout): ``cut.train`` is the **new** graph, ``cut.test`` the
   validation targets (NDCG@10, full ranking, training items excluded).
2. **old** = new minus 5 % of its interactions: every edge of a few brand-new users (≤ 1.5 % of
   users, ≤ 1/3 of the budget), every edge of brand-new items (≤ 2 % of items), then random other
   interactions (``older``). No validation pair is in either graph.
3. The old model is fitted cold on old with the shipped defaults (kge: RotatE-64, 16 epochs,
   without the 2 % link-prediction cut, as the warm run has none; multvae 75 epochs; als 15
   iterations). On new: **cold** = the same fit; **warm** = the model's warm-start adapter
   (``recommenders.models.warm_adapters``) from the old model, validated after every epoch
   (epoch 0 = the start), at most 8 / 20 / 5 epochs. Target: warm reaches ≥ 99 % of cold's
   validation NDCG@10 in ≤ 30 % of cold's CPU time (initialisation included).
4. **kgrec train** = ``fit(new, FitContext(warm=…))``, the whole production procedure (its own
   validation on held-out new pairs, early stop, one final epoch): CPU seconds and the NDCG@10
   of what it ships, on the same targets.

Times are CPU seconds of this process (``time.process_time``; one torch, BLAS and OpenMP
thread), validation passes excluded: the machine is shared and loaded, so wall time means
little. ``uptime`` before and after is in the JSON.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/warm_start.py --dataset ml-latest-small
    PYTHONPATH=. .venv/bin/python benchmarks/warm_start.py --report   # RESULTS.md section
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sections import write_section

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.base import FitContext, Recommender, WarmStart
from kgrec.recommenders.evaluation.splits import Split
from kgrec.recommenders.evaluation.validation_cut import user_ndcg, validation_cut
from kgrec.recommenders.models.warm_adapters import ALSWarm, KGEWarm, MultVAEWarm
from kgrec.recommenders.registry import create

DATASETS = Path("/work/shared/datasets")
OUT = Path(__file__).resolve().parent / "results"
CONFIGS: dict[str, dict[str, Any]] = {
    "kge": {"test_fraction": 0.0, "progress": False, "device": "cpu"},
    "multvae": {"device": "cpu", "threads": 1},
    "als": {"num_threads": 1},
}
WARM_EPOCHS = {"kge": 8, "multvae": 20, "als": 5}
ADAPTERS = {"kge": KGEWarm, "multvae": MultVAEWarm, "als": ALSWarm}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_snapshot(name: str) -> GraphSnapshot:
    if name == "lastfm-2k":
        from kgrec.loaders.lastfm import load
    else:
        from kgrec.loaders.movielens import load
    return build_snapshot(load(DATASETS / name).records)


def records_of(s: GraphSnapshot) -> GraphRecords:
    """The snapshot's interactions, items, tags, taggings and follows as records."""
    u, i, t = s.users.ids, s.items.ids, s.tags.ids
    coo = s.interactions.tocoo()
    recs = GraphRecords()
    recs.interactions = [
        Interaction(u[a], i[b], float(w), None if np.isnan(r) else float(r), None if ts < 0 else int(ts))
        for a, b, w, r, ts in zip(coo.row, coo.col, coo.data, s.ratings, s.timestamps, strict=True)]
    recs.items = [Item(x, s.item_titles[k]) for k, x in enumerate(i)]
    recs.tags = [Tag(x, s.tag_names[k], s.tag_kinds[k]) for k, x in enumerate(t)]
    it = s.item_tags.tocoo()
    recs.item_tags = [ItemTag(i[a], t[b], float(c)) for a, b, c in zip(it.row, it.col, it.data, strict=True)]
    tg = s.taggings
    recs.taggings = [Tagging(u[a], i[b], t[c]) for a, b, c in zip(tg["user"], tg["item"], tg["tag"], strict=True)]
    fo = s.follows.tocoo()
    recs.follows = [Follow(u[a], u[b], float(w)) for a, b, w in zip(fo.row, fo.col, fo.data, strict=True)]
    return recs


def older(new: GraphSnapshot, share: float = 0.05, user_share: float = 0.015, item_share: float = 0.02,
          seed: int = 7) -> tuple[GraphSnapshot, dict[str, int]]:
    """``new`` without ~``share`` of its interactions, brand-new users and items included."""
    rng = np.random.default_rng(seed)
    m = new.interactions
    target = round(share * m.nnz)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    counts, audience = np.diff(m.indptr), np.diff(m.tocsc().indptr)
    picked: list[int] = []
    for u in rng.permutation(m.shape[0]).tolist():
        if len(picked) >= round(user_share * m.shape[0]) or counts[picked].sum() + counts[u] > target / 3:
            continue
        picked.append(u)
    drop = np.isin(rows, picked)
    chosen: list[int] = []
    for i in rng.permutation(np.flatnonzero(audience >= 1)).tolist():
        if len(chosen) >= round(item_share * m.shape[1]):
            break
        if (drop | np.isin(m.indices, [*chosen, i])).sum() <= 2 * target / 3:
            chosen.append(i)
    drop |= np.isin(m.indices, chosen)
    extra = target - int(drop.sum())
    if extra > 0:
        drop[rng.choice(np.flatnonzero(~drop), size=extra, replace=False)] = True
    gone_users = {new.users.ids[k] for k in picked}
    gone_items = {new.items.ids[k] for k in chosen}
    dropped = {(new.users.ids[a], new.items.ids[b]) for a, b in zip(rows[drop], m.indices[drop], strict=True)}
    recs = records_of(new)
    recs.interactions = [r for r in recs.interactions if (r.user, r.item) not in dropped]
    recs.taggings = [t for t in recs.taggings if t.user not in gone_users and t.item not in gone_items
                     and (t.user, t.item) not in dropped]
    recs.item_tags = [r for r in recs.item_tags if r.item not in gone_items]
    recs.items = [r for r in recs.items if r.id not in gone_items]
    recs.follows = [f for f in recs.follows if f.user not in gone_users and f.friend not in gone_users]
    return build_snapshot(recs), {"new_users": len(gone_users), "new_items": len(gone_items),
                                  "removed_interactions": int(drop.sum())}


def ndcg(model: Recommender, cut: Split) -> float:
    return float(np.mean(user_ndcg(model, cut, np.asarray(cut.users, dtype=np.int64))))


def cold_fit(name: str, snapshot: GraphSnapshot, cache: Path | None = None) -> tuple[Recommender, float]:
    """The cold fit and its CPU seconds; with ``cache``, a fit saved there before (and its seconds)."""
    from kgrec.recommenders.registry import get

    where = cache / f"{name}-{snapshot.fingerprint}" if cache is not None else None
    if where is not None and (where / "seconds.json").is_file():
        return get(name).load(where, snapshot), float(json.loads((where / "seconds.json").read_text()))
    started = time.process_time()
    model = create(name, **CONFIGS[name]).fit(snapshot)
    seconds = time.process_time() - started
    if where is not None:
        model.save(where)
        (where / "seconds.json").write_text(json.dumps(seconds))
    return model, seconds


def warm_curve(name: str, old: Recommender, cut: Split) -> dict[str, Any]:
    """The warm adapter from ``old`` on ``cut.train``, validated on ``cut.test`` after every
    epoch; CPU seconds exclude the validation passes."""
    model = create(name, **CONFIGS[name])
    adapter = ADAPTERS[name](model, WarmStart("old", "", "", old.snapshot, {name: old}))  # type: ignore[attr-defined]
    curve: list[tuple[int, float, float]] = []
    clock = {"spent": 0.0, "resumed": time.process_time()}

    def after_epoch(epoch: int, state: Any) -> bool:
        clock["spent"] += time.process_time() - clock["resumed"]
        probe = create(name, **CONFIGS[name])
        probe._start(cut.train)  # type: ignore[attr-defined]
        adapter.attach(probe, cut.train, state)
        value = ndcg(probe, cut)
        curve.append((epoch, round(clock["spent"], 3), round(value, 5)))
        log(f"  {name} warm epoch {epoch}: {value:.4f} ({clock['spent']:.1f} CPU s)")
        clock["resumed"] = time.process_time()
        best = max(range(len(curve)), key=lambda k: curve[k][2])
        return epoch - curve[best][0] >= 3

    _, init = adapter.train(cut.train, adapter.source(old), WARM_EPOCHS[name], after_epoch)
    return {"curve": curve, "init": init}


def production(name: str, old: Recommender, cut: Split) -> dict[str, Any]:
    """``fit`` with a warm start, as ``kgrec train --warm-start`` runs it."""
    warm = WarmStart("old", "", "", old.snapshot, {name: old})  # type: ignore[attr-defined]
    started = time.process_time()
    model = create(name, **CONFIGS[name]).fit(cut.train, FitContext(warm=warm))
    seconds = time.process_time() - started
    return {"cpu_seconds": round(seconds, 2), "ndcg": round(ndcg(model, cut), 5), "record": model.warm_record}


def run(dataset: str, models: list[str], cache: Path | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    path = OUT / f"warm_start-{dataset}.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    full = load_snapshot(dataset)
    cut = validation_cut(full, 43)
    old, made = older(cut.train)
    res.update(dataset=dataset, load_before=os.getloadavg(), new=cut.train.counts, old=old.counts,
               validation_users=len(cut.users), **made)
    log(f"{dataset}: old {old.counts['interactions']} / new {cut.train.counts['interactions']} interactions, {made}")
    for name in models:
        old_model, old_s = cold_fit(name, old, cache)
        log(f"{name}: old fitted in {old_s:.1f} CPU s")
        cold, cold_s = cold_fit(name, cut.train, cache)
        cold_v = ndcg(cold, cut)
        log(f"{name}: cold {cold_v:.4f} in {cold_s:.1f} CPU s")
        warm = warm_curve(name, old_model, cut)
        prod = production(name, old_model, cut)
        log(f"{name}: kgrec train --warm-start {prod['ndcg']:.4f} in {prod['cpu_seconds']:.1f} CPU s")
        res.setdefault("models", {})[name] = {"old_cpu_seconds": round(old_s, 2), "cold_cpu_seconds": round(cold_s, 2),
                                              "cold_ndcg": round(cold_v, 5), "warm": warm, "production": prod,
                                              "load_after": os.getloadavg()}
        OUT.mkdir(exist_ok=True)
        path.write_text(json.dumps(res, indent=1))


def reached(entry: dict[str, Any]) -> tuple[int, float] | None:
    """The first warm epoch at ≥ 99 % of cold and its CPU seconds, or None."""
    for epoch, seconds, value in entry["warm"]["curve"]:
        if value >= 0.99 * entry["cold_ndcg"]:
            return epoch, seconds
    return None


def report() -> str:
    lines = ["| dataset | model | cold: NDCG@10, CPU s | warm: epoch 0 → best (epoch) | ≥ 99 % of cold at | "
             "share of cold CPU | target | `kgrec train --warm-start`: NDCG@10, CPU s (share), decision |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in ("lastfm-2k", "ml-latest-small"):
        path = OUT / f"warm_start-{dataset}.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        for name, e in res.get("models", {}).items():
            curve = e["warm"]["curve"]
            best = max(curve, key=lambda c: c[2])
            hit = reached(e)
            share = hit[1] / e["cold_cpu_seconds"] if hit else math.nan
            met = "met" if hit and share <= 0.30 else "**not met**"
            p = e["production"]
            lines.append(
                f"| {dataset} | {name} | {e['cold_ndcg']:.4f}, {e['cold_cpu_seconds']:.1f} | {curve[0][2]:.4f} → "
                f"{best[2]:.4f} ({best[0]}) | {f'epoch {hit[0]}, {hit[1]:.1f} s' if hit else 'never'} | "
                f"{'' if not hit else f'{share:.0%}'} | {met} | {p['ndcg']:.4f}, {p['cpu_seconds']:.1f} "
                f"({p['cpu_seconds'] / e['cold_cpu_seconds']:.0%}), {p['record']['decision']} "
                f"(best epoch {p['record'].get('best_epoch', '–')}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=("lastfm-2k", "ml-latest-small"))
    ap.add_argument("--models", default="als,multvae,kge")
    ap.add_argument("--report", action="store_true", help="write the RESULTS.md section from the JSON files")
    ap.add_argument("--cache", type=Path, help="keep the old and cold fits here and reuse them (same graphs)")
    args = ap.parse_args()
    if args.report:
        table = report()
        print(table)
        write_section("warm-start", HEADER + table + FOOTER)
        return
    run(args.dataset, args.models.split(","), args.cache)


HEADER = """### Warm-started retraining (`benchmarks/warm_start.py`)

Old = new minus 5 % of its interactions (brand-new users and items included); validation NDCG@10 on
kgrec's validation cut of the new graph (no validation pair in either graph). CPU seconds of one
thread (`process_time`, validation passes excluded) on the shared, loaded 2-core machine. Warm =
the model's warm-start adapter from the old model, validated after every epoch (epoch 0 = the start).
Target (issue 19): ≥ 99 % of cold's NDCG@10 in ≤ 30 % of cold's CPU time.

"""
FOOTER = """

`kgrec train --warm-start` runs the whole production procedure (`recommenders/models/warm_fit.py`):
validation on held-out pairs that are new since the old bundle, early stop, one final epoch on the
whole graph; its NDCG@10 is of what it ships, on the same validation cut.
"""


if __name__ == "__main__":
    main()
