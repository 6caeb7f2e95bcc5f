"""The multi-task network against the same network trained on each behaviour alone (issue 19, item 6).

Datasets and behaviours (each a binary users × columns matrix over one user index, built the
way ``recommenders.models.multitask.behaviours`` reads a snapshot):

- **Last.fm 2K**: plays (``interactions``: user → artist) and tags (``tags``: user → tag used);
- **ml-latest-small**: ratings (``interactions``) and tags (``tags``);
- **Foursquare NYC** (``foursquare-nyc-ubicomp2013``): check-ins (``interactions``, weight = visits)
  and tips (``tagged``: each tip is a TAGGED edge with the tag ``tip``, as ``kgrec load csv``
  would read a ``taggings.csv`` of ``user,venue,tip``; venue tags become HAS_TAG). ``--csv DIR``
  writes that CSV folder.

Protocol: per behaviour, a seeded (42) random 20 % of each user's entries (users with ≥ 5) is
the test side; a second cut (seed 43) of what is left is the validation side. **No pair leaks
across behaviours**: a (user, item) pair held out from one item behaviour is removed from the
other's training input too, and the taggings of held-out interactions leave the tags behaviour
(kgrec's split rule). NDCG@10 over the modelled columns, the user's training entries of that
behaviour excluded. Variants: each behaviour alone (single-task), both with the other head's
loss weighted 1 or 0.3 (joint), all with the shipped network (600 → 64, dropout 0.5, batch 500,
Adam 1e-3, KL annealed to 0.2 over 20 epochs, seed 42). Each variant trains once on the
validation cut (NDCG every 5 epochs, at most ``--epochs``); each head's epoch count and the
joint weight (best mean ratio to single-task) are chosen there; the chosen variants are refitted
once on the whole training side and the test value is read at each head's chosen epoch.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/multitask.py --dataset foursquare-nyc
    PYTHONPATH=. .venv/bin/python benchmarks/multitask.py --report
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sections import write_section

from kgrec.graph.records import GraphRecords, Interaction, Item, ItemTag, Tag, Tagging
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
from kgrec.recommenders.models.ease import kept_items
from kgrec.recommenders.models.multitask import behaviours
from kgrec.recommenders.ranking import top_k

DATASETS = Path("/work/shared/datasets")
OUT = Path(__file__).resolve().parent / "results"
TASKS = {"lastfm-2k": ("interactions", "tags"), "ml-latest-small": ("interactions", "tags"),
         "foursquare-nyc": ("interactions", "tagged")}
NAMES = {"lastfm-2k": ("plays", "tags"), "ml-latest-small": ("ratings", "tags"),
         "foursquare-nyc": ("check-ins", "tips")}
WEIGHTS = (1.0, 0.3)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def foursquare_records(root: Path = DATASETS / "foursquare-nyc-ubicomp2013") -> GraphRecords:
    """Check-ins (visits counted), tips as TAGGED ``tip`` edges, venue tags (SOURCE.md: tips are
    mixed UTF-8/Latin-1, tags GBK; only ids are read here, the tag names decoded as GBK)."""
    visits: dict[tuple[str, str], int] = {}
    with (root / "dataset_ubicomp2013_checkins.txt").open(encoding="ascii") as f:
        for line in f:
            user, venue = line.rstrip("\n").split("\t")[:2]
            visits[(user, venue)] = visits.get((user, venue), 0) + 1
    tips: set[tuple[str, str]] = set()
    with (root / "dataset_ubicomp2013_tips.txt").open(encoding="latin-1") as f:
        for line in f:
            user, venue = line.rstrip("\n").split("\t")[:2]
            tips.add((user, venue))
    item_tags: set[tuple[str, str]] = set()
    with (root / "dataset_ubicomp2013_tags.txt").open(encoding="gbk") as f:
        for line in f:
            venue, _, names = line.rstrip("\n").partition("\t")
            item_tags.update((venue, t.strip()) for t in names.split(",") if t.strip())
    recs = GraphRecords()
    recs.interactions = [Interaction(u, v, float(n)) for (u, v), n in sorted(visits.items())]
    venues = sorted({v for _, v in visits} | {v for _, v in tips} | {v for v, _ in item_tags})
    recs.items = [Item(v) for v in venues]
    names = sorted({t for _, t in item_tags} | {"tip"})
    ids = {n: f"t{k}" for k, n in enumerate(names)}
    recs.tags = [Tag(ids[n], n, "tip" if n == "tip" else "tag") for n in names]
    recs.taggings = [Tagging(u, v, ids["tip"]) for u, v in sorted(tips)]
    recs.item_tags = [ItemTag(v, ids[t]) for v, t in sorted(item_tags)]
    return recs


def write_csv(recs: GraphRecords, out: Path) -> None:
    """The CSV folder ``kgrec load csv`` reads (interactions, items, tags, item_tags, taggings)."""
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
        "interactions.csv": (["user", "item", "weight"], [(r.user, r.item, r.weight) for r in recs.interactions]),
        "items.csv": (["item"], [(i.id,) for i in recs.items]),
        "tags.csv": (["tag", "name", "kind"], [(t.id, t.name, t.kind) for t in recs.tags]),
        "item_tags.csv": (["item", "tag"], [(r.item, r.tag) for r in recs.item_tags]),
        "taggings.csv": (["user", "item", "tag"], [(r.user, r.item, r.tag) for r in recs.taggings]),
    }
    for name, (header, rows) in tables.items():
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def load_snapshot(dataset: str) -> GraphSnapshot:
    if dataset == "foursquare-nyc":
        return build_snapshot(foursquare_records())
    if dataset == "lastfm-2k":
        from kgrec.loaders.lastfm import load
    else:
        from kgrec.loaders.movielens import load
    return build_snapshot(load(DATASETS / dataset).records)


def holdout(x: sp.csr_matrix, seed: int) -> sp.csr_matrix:
    """A seeded 20 % (≥ 1, never all) of the entries of each user with ≥ 5, as a 0/1 matrix."""
    x = sp.csr_matrix(x)
    rng = np.random.default_rng(seed)
    held = np.zeros(x.nnz, dtype=bool)
    for u in range(x.shape[0]):
        a, b = x.indptr[u], x.indptr[u + 1]
        if b - a >= 5:
            held[a + rng.choice(b - a, size=min(b - a - 1, max(1, round(0.2 * (b - a)))), replace=False)] = True
    out = sp.csr_matrix((held.astype(np.float32), x.indices, x.indptr), shape=x.shape)
    out.eliminate_zeros()
    return out


def split(snapshot: GraphSnapshot, tasks: Sequence[str], seed: int) -> tuple[GraphSnapshot, dict[str, sp.csr_matrix]]:
    """The snapshot without each task's held-out entries (no pair leaks across behaviours, see the
    module docstring) and the held-out entries per task."""
    x = behaviours(snapshot)
    test = {t: holdout(x[t], seed + k) for k, t in enumerate(tasks)}
    pairs = sp.csr_matrix(sum((test[t] for t in tasks if t != "tags"), sp.csr_matrix(x["interactions"].shape)))
    m = sp.csr_matrix(snapshot.interactions, copy=True)
    drop = sp.csr_matrix(m.multiply(pairs) != 0)
    m = sp.csr_matrix(m - m.multiply(drop))
    m.eliminate_zeros()
    tg = snapshot.taggings
    gone = np.asarray(pairs[tg["user"], tg["item"]]).ravel() > 0
    if "tags" in test:
        gone |= np.asarray(test["tags"][tg["user"], tg["tag"]]).ravel() > 0
    return snapshot.with_interactions(m, tg[~gone]), test


def ndcg(scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix, users: np.ndarray) -> float:
    lists, rel = [], []
    for n, u in enumerate(users.tolist()):
        s = np.array(scores[n], dtype=np.float64, copy=True)
        s[seen.indices[seen.indptr[u] : seen.indptr[u + 1]]] = -np.inf
        lists.append(top_k(s, 10, positive_only=False))
        rel.append(relevant.indices[relevant.indptr[u] : relevant.indptr[u + 1]])
    return float(np.mean(ndcg_of_lists(lists, rel, 10))) if users.size else 0.0


def head_scores(arrays: dict[str, np.ndarray], xs: Sequence[sp.csr_matrix], head: int, users: np.ndarray) -> np.ndarray:
    """Head ``head``'s logits (numpy, the mean path, as ``MultiTask`` serves them)."""
    from kgrec.recommenders.models._multitask_training import input_blocks

    x = input_blocks([m[users] for m in xs])
    h1 = np.tanh(x @ arrays["enc_w"] + arrays["enc_b"])
    h2 = np.tanh((h1 @ arrays["mu_w"] + arrays["mu_b"]) @ arrays["dec_w"] + arrays["dec_b"])
    return np.asarray(h2 @ arrays[f"out_w:{head}"] + arrays[f"out_b:{head}"])


def curves(train: GraphSnapshot, target: dict[str, sp.csr_matrix], tasks: Sequence[str], variant: tuple[str, ...],
           weights: Sequence[float], epochs: int) -> tuple[dict[str, list[tuple[int, float]]], float]:
    """Train ``variant`` (its behaviours, in order) on ``train``; NDCG of each head on ``target``
    every 5 epochs; training CPU seconds (evaluation excluded)."""
    from kgrec.recommenders.models._multitask_training import MultiTaskOptions, train_multitask

    x = behaviours(train)
    cols = {t: kept_items(np.diff(sp.csc_matrix(x[t]).indptr), 2, 20000) for t in variant}
    xs = [sp.csr_matrix(x[t][:, cols[t]]) for t in variant]
    out: dict[str, list[tuple[int, float]]] = {t: [] for t in variant}
    clock = {"eval": 0.0}
    has_input = sum(np.diff(m.indptr) for m in xs) > 0

    def on_epoch(epoch: int, arrays: dict[str, np.ndarray]) -> None:
        started = time.process_time()
        for h, t in enumerate(variant):
            users = np.flatnonzero((np.diff(target[t].indptr) > 0) & has_input)
            full = np.full((len(users), x[t].shape[1]), -np.inf)
            full[:, cols[t]] = head_scores(arrays, xs, h, users)
            out[t].append((epoch, round(ndcg(full, x[t], target[t], users), 5)))
        clock["eval"] += time.process_time() - started

    started = time.process_time()
    train_multitask(xs, list(weights), MultiTaskOptions(epochs=epochs, seed=42, threads=1), on_epoch, every=5)
    return out, time.process_time() - started - clock["eval"]


def run(dataset: str, epochs: int) -> None:
    import torch

    torch.set_num_threads(1)
    tasks = TASKS[dataset]
    full = load_snapshot(dataset)
    train, test = split(full, tasks, 42)
    inner, val = split(train, tasks, 43)
    path = OUT / f"multitask-{dataset}.json"
    res: dict[str, Any] = {"dataset": dataset, "load_before": os.getloadavg(), "tasks": tasks,
                           "test_users": {t: int((np.diff(test[t].indptr) > 0).sum()) for t in tasks},
                           "validation": {}, "test": {}}
    variants = {f"single:{t}": ((t,), (1.0,)) for t in tasks}
    variants.update({f"joint w={w}": (tuple(tasks), (1.0, w)) for w in WEIGHTS})
    for name, (variant, weights) in variants.items():
        c, seconds = curves(inner, val, tasks, variant, weights, epochs)
        res["validation"][name] = {"curves": c, "cpu_seconds": round(seconds, 1)}
        log(f"{dataset} validation {name}: " + ", ".join(f"{t} {max(v for _, v in c[t]):.4f}" for t in variant))
    best_single = {t: max(v for _, v in res["validation"][f"single:{t}"]["curves"][t]) for t in tasks}

    def ratio(name: str) -> float:
        return float(np.mean([max(v for _, v in res["validation"][name]["curves"][t]) / max(best_single[t], 1e-9)
                              for t in tasks]))

    joint = max((f"joint w={w}" for w in WEIGHTS), key=ratio)
    res["joint_chosen"] = joint
    for name in (*(f"single:{t}" for t in tasks), joint):
        variant, weights = variants[name]
        chosen = {t: max(res["validation"][name]["curves"][t], key=lambda c: c[1])[0] for t in variant}
        c, seconds = curves(train, test, tasks, variant, weights, max(chosen.values()))
        res["test"][name] = {t: {"epochs": chosen[t], "ndcg": dict(c[t]).get(chosen[t])} for t in variant}
        res["test"][name]["cpu_seconds"] = round(seconds, 1)
        log(f"{dataset} test {name}: {res['test'][name]}")
    res["load_after"] = os.getloadavg()
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1))


def report() -> str:
    lines = ["| dataset (joint variant) | behaviour (test users) | single-task NDCG@10 (epochs) "
             "| joint NDCG@10 (epochs) | joint / single |", "|---|---|---|---|---|"]
    verdicts = []
    for dataset in TASKS:
        path = OUT / f"multitask-{dataset}.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        joint = res["joint_chosen"]
        ok = True
        for t, label in zip(res["tasks"], NAMES[dataset], strict=True):
            s, j = res["test"][f"single:{t}"][t], res["test"][joint][t]
            ok &= j["ndcg"] >= s["ndcg"]
            lines.append(f"| {dataset} ({joint}) | {label} ({res['test_users'][t]}) | {s['ndcg']:.4f} ({s['epochs']})"
                         f" | {j['ndcg']:.4f} ({j['epochs']}) | {j['ndcg'] / max(s['ndcg'], 1e-9) - 1:+.1%} |")
        verdicts.append(f"{dataset}: " + ("at least as good on every behaviour" if ok
                                          else "**not** at least as good on every behaviour"))
    return "\n".join(lines) + "\n\n" + "; ".join(verdicts) + "."


HEADER = """### Multi-task network (`benchmarks/multitask.py`)

One Mult-VAE network for two behaviours (shared encoder and latent, one head each) against the same
network trained on each behaviour alone; test NDCG@10 at each head's epoch count chosen on a
validation cut; no (user, item) pair leaks across behaviours (see the script). Target (issue 19): the
joint model at least as good as single-task on every behaviour, on at least one dataset.

"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=tuple(TASKS))
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--csv", type=Path, help="write Foursquare NYC as a kgrec CSV folder here and stop")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.csv:
        write_csv(foursquare_records(), args.csv)
        return
    if args.report:
        table = report()
        print(table)
        write_section("multitask", HEADER + table)
        return
    run(args.dataset, args.epochs)


if __name__ == "__main__":
    main()
