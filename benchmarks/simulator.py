"""Learning while it serves: a held-out-choice simulator through the real read path.

Data: Last.fm 2K and ml-latest-small, split by ``/work/shared/checks/lib/split.py`` (per-user random
80/20, seed 42). The training side is loaded into a MemoryStore and a bundle (``ease`` first, which
folds new history in, then ``popularity``) is trained on it. Every test user is then served
``--rounds`` rounds of ``--k`` items, each request through the read path the API uses — a
``LiveState`` read of the store (history, dislikes, hidden items, impressions), ``Server.decide``,
the impressions handed to an ``ImpressionLogger`` that writes them to the store — and an item is
chosen (reward 1) iff it is one of the user's held-out items not chosen before. Choices are written
back after each round as the API writes feedback naming an impression (an INTERACTED upsert plus
the impression's outcome), so the next round's lists see them on every path.

Policies: ``greedy`` (today's behaviour), ``exclusion`` (greedy, the client excluding everything it
was shown: ``exclude_item=``), ``learn`` (the server's default: greedy + items shown and not chosen
suppressed + choices folded in) and ``explore`` (learn with ε = 0.1 on slots 4-10).

Off-policy evaluation: on the explore run's log, ``recommenders.serving.logged_evaluation``
estimates greedy, learn and explore (ε = 0.1) per request; the truth it should recover is each
target's reward on the logged states (the simulator knows every held-out item), and round 1 —
where every policy sees the same states — is compared with each policy's own on-policy round 1.

Cold users (``--cold``): each test user keeps 5 random training items in the graph; every other
item of their profile (the rest of training and the held-out items) is a reward; the bundle is
fitted on that graph.

    python benchmarks/simulator.py [--datasets DIR] [--data lastfm,ml] [--cold] [--users N] [--write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPLIT = Path("/work/shared/checks/lib/split.py")
DATASETS = {"lastfm": "lastfm-2k", "ml": "ml-latest-small"}
SPLIT_NAMES = {"lastfm": "lastfm-2k", "ml": "ml-latest-small"}
FILES = {"train.csv": "interactions.csv", "items.csv": "items.csv", "tags.csv": "tags.csv",
         "item_tags.csv": "item_tags.csv", "user_tags.csv": "taggings.csv", "social.csv": "social.csv"}
POLICIES = ("greedy", "exclusion", "learn", "explore")
RESULTS = ROOT / "benchmarks" / "results"


def make_split(key: str, datasets: Path, work: Path) -> Path:
    out = work / f"split-{key}"
    if not (out / "test.csv").is_file():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(SPLIT), SPLIT_NAMES[key], str(datasets / DATASETS[key]), str(out)],
                       check=True)
    return out


def read_pairs(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [(r["user"], r["item"]) for r in csv.DictReader(f)]


def build_world(key: str, split: Path, work: Path, cold: bool, seed: int = 42) -> tuple[Path, str, dict[str, set[str]]]:
    """The graph (a MemoryStore directory), a bundle, and each test user's reward items."""
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.snapshot import build_snapshot
    from kgrec.loaders import csv_dir
    from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle

    name = f"{key}{'-cold' if cold else ''}"
    base = work / name
    folder = base / "csv"
    train = read_pairs(split / "train.csv")
    test = read_pairs(split / "test.csv")
    rewards: dict[str, set[str]] = defaultdict(set)
    for u, i in test:
        rewards[u].add(i)
    keep_rows = None
    if cold:
        rng = random.Random(seed)
        by_user: dict[str, list[str]] = defaultdict(list)
        for u, i in train:
            by_user[u].append(i)
        keep_rows = set()
        for u, items in by_user.items():
            if u in rewards:
                kept = set(rng.sample(sorted(items), min(5, len(items))))
                rewards[u] |= set(items) - kept
                keep_rows |= {(u, i) for i in kept}
            else:
                keep_rows |= {(u, i) for i in items}
    if not (base / "bundle" / "manifest.json").is_file():
        shutil.rmtree(base, ignore_errors=True)
        folder.mkdir(parents=True)
        for src, dst in FILES.items():
            if not (split / src).is_file():
                continue
            with open(split / src, encoding="utf-8") as f:
                rows = list(csv.reader(f))
            if src == "train.csv" and keep_rows is not None:
                rows = [rows[0], *[r for r in rows[1:] if (r[0], r[1]) in keep_rows]]
            if len(rows) > 1:
                with open(folder / dst, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows(rows)
        loaded = csv_dir.load(folder)
        store = MemoryStore(base / "store")
        store.load(loaded.records)
        store.close()
        snap = build_snapshot(loaded.records)
        started = time.perf_counter()
        models = fit_models(snap, ["ease", "popularity"], seed=seed)
        save_bundle(base / "bundle", snap, models, seed=seed, overwrite=True)
        print(f"{name}: bundle fitted in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return base, str(base / "bundle"), {u: s for u, s in rewards.items() if s}


@dataclass
class Run:
    policy: str
    per_round: list[int] = field(default_factory=list)
    stalled: list[int] = field(default_factory=list)  # users with rewards left who got 0, per round
    seconds: float = 0.0
    requests: int = 0
    serve_ms: list[float] = field(default_factory=list)
    round1_by_user: dict[str, int] = field(default_factory=dict)


def simulate(base: Path, bundle: str, rewards: dict[str, set[str]], policy: str, rounds: int, k: int,
             users: list[str], store_dir: Path) -> Run:
    """One policy's rollout on a fresh copy of the store."""
    from kgrec.graph.impressions import Outcome
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.records import Interaction
    from kgrec.recommenders.serving.impression_log import ImpressionLogger, impressions, new_request_id, seed_of
    from kgrec.recommenders.serving.live_state import LiveState
    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.server_loading import load_server

    shutil.rmtree(store_dir, ignore_errors=True)
    shutil.copytree(base / "store", store_dir)
    store = MemoryStore(store_dir)
    server = load_server(bundle, default_model="ease")

    lock = threading.RLock()  # a MemoryStore takes turns between threads (the API's StoreHandle does this)

    def read(fn):  # type: ignore[no-untyped-def]
        with lock:
            store.refresh()
            return fn(store)

    def write(fn):  # type: ignore[no-untyped-def]
        with lock, store.exclusive():
            return fn(store)

    live = LiveState(server, read)
    logger = ImpressionLogger(write, capacity=10_000_000, batch=20_000, interval=0.2)
    left = {u: set(rewards[u]) for u in users}
    shown: dict[str, set[str]] = defaultdict(set)
    run = Run(policy)
    started = time.perf_counter()
    for t in range(rounds):
        got, stalled = 0, 0
        feedback: list[tuple[str, str, str]] = []
        for u in users:
            t0 = time.perf_counter()
            state = live.state(u).state
            request = new_request_id()
            q = Query(u, k, policy="greedy" if policy == "exclusion" else policy, seed=seed_of(request),
                      exclude=frozenset(shown[u]) if policy == "exclusion" else frozenset())
            decision = server.decide(q, state)
            rows = impressions(decision, request, u, "ease")
            logger.submit(rows)
            live.note_shown(u, [s.item for s in decision.served])
            run.serve_ms.append((time.perf_counter() - t0) * 1000)
            hits = 0
            for row in rows:
                shown[u].add(row.item)
                if row.item in left[u]:
                    left[u].discard(row.item)
                    feedback.append((u, row.item, row.id))
                    hits += 1
            got += hits
            if t == 0:
                run.round1_by_user[u] = hits
            if hits == 0 and left[u]:
                stalled += 1
            run.requests += 1
        logger.flush(600)
        if feedback:  # what POST /v1/interactions with impression_id writes
            now = time.time()
            write(lambda st, fb=feedback, at=now: (
                st.upsert_interactions([Interaction(u, i, 1.0) for u, i, _ in fb]),
                st.record_outcomes([Outcome(imp, "chosen", at) for _, _, imp in fb])))
        run.per_round.append(got)
        run.stalled.append(stalled)
        print(f"  {policy:9s} round {t + 1:2d}: {got:5d} rewards, {stalled} users stalled "
              f"({time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
    logger.close()
    run.seconds = time.perf_counter() - started
    store.close()
    return run


def ope(base: Path, bundle: str, rewards: dict[str, set[str]], store_dir: Path, runs: dict[str, Run]) -> dict:
    """Off-policy estimates of greedy, learn and explore on the explore run's log vs the truth."""
    import numpy as np

    from kgrec.graph.memory import MemoryStore
    from kgrec.recommenders.serving.logged_evaluation import Target, evaluate_logged, logged_requests
    from kgrec.recommenders.serving.server_loading import load_server

    server = load_server(bundle, default_model="ease")
    store = MemoryStore(store_dir)
    logged = store.logged_impressions()
    store.close()
    requests = logged_requests(logged)
    targets = [Target("ease", p) for p in ("greedy", "learn", "explore")]
    started = time.perf_counter()
    report = evaluate_logged(server, logged, targets)
    out = {"requests": report.requests, "impressions": report.impressions, "logged_value": report.logged_value,
           "seconds": round(time.perf_counter() - started, 1), "targets": {}}
    # the truth: each target's expected reward on each logged state (rewards left at that time)
    chosen_before: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in requests:
        for item, when in zip(r.items, r.chosen_at, strict=True):
            if when is not None:
                chosen_before[r.user].append((when, item))
    first_at: dict[str, float] = {}
    for r in requests:
        first_at[r.user] = min(first_at.get(r.user, r.at), r.at)
    first_round = {r.request for r in requests if r.at == first_at[r.user]}
    for t in report.targets:
        truth, truth_r1 = [], []
        for r, lst in zip(requests, t.lists, strict=True):
            gone = {i for when, i in chosen_before[r.user] if when < r.at}
            value = sum(p for i, p in lst.items() if i in rewards[r.user] and i not in gone)
            truth.append(value)
            if r.request in first_round:
                truth_r1.append(value)
        # round 1 (no skips yet): greedy and learn serve the same lists, so either's round 1 stands for both
        own = runs.get(t.target.policy) or (runs.get("learn") if t.target.policy == "greedy" else None)
        on_policy_r1 = (sum(own.round1_by_user.values()) / len(own.round1_by_user)) if own else None
        out["targets"][t.target.name] = {
            "truth": float(np.mean(truth)), "truth_round1": float(np.mean(truth_r1)),
            "on_policy_round1": on_policy_r1, "coverage": t.coverage, "ess": t.ess,
            "estimates": {e.name: {"value": e.value, "lo": e.lo, "hi": e.hi} for e in t.estimates},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/shared/datasets")))
    ap.add_argument("--data", default="lastfm,ml")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--cold", action="store_true", help="the cold-user variant")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--users", type=int, default=0, help="only the first N test users (0: all)")
    ap.add_argument("--no-ope", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="split, load and train, then stop")
    ap.add_argument("--work", type=Path, default=ROOT / "data" / "bench" / "simulator")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for key in a.data.split(","):
        split = make_split(key, a.datasets, a.work)
        base, bundle, rewards = build_world(key, split, a.work, a.cold)
        users = sorted(rewards)[: a.users or None]
        name = f"{key}{'-cold' if a.cold else ''}"
        if a.build_only:
            continue
        runs: dict[str, Run] = {}
        load = os.getloadavg()[0]
        result: dict = {"dataset": name, "users": len(users), "rounds": a.rounds, "k": a.k,
                        "reward_items": sum(len(rewards[u]) for u in users), "load_at_start": round(load, 1),
                        "policies": {}}
        part = "" if a.policies == ",".join(POLICIES) else "-" + a.policies.replace(",", "-")
        path = a.out / f"simulator_{name}{part}.json"
        for policy in a.policies.split(","):
            print(f"{name}: {policy}, {len(users)} users x {a.rounds} rounds", file=sys.stderr, flush=True)
            r = runs[policy] = simulate(base, bundle, rewards, policy, a.rounds, a.k, users, base / f"run-{policy}")
            ms = sorted(r.serve_ms)
            result["policies"][policy] = {
                "total": sum(r.per_round), "per_round": r.per_round, "stalled_users_per_round": r.stalled,
                "rounds_without_reward": sum(1 for x in r.per_round if x == 0), "seconds": round(r.seconds, 1),
                "serve_ms_p50": round(ms[len(ms) // 2], 3), "serve_ms_p99": round(ms[int(len(ms) * 0.99)], 3),
                "load_after": round(os.getloadavg()[0], 1)}
            if "exclusion" in result["policies"]:
                base_total = max(result["policies"]["exclusion"]["total"], 1)
                for p in result["policies"].values():
                    p["vs_exclusion"] = round(p["total"] / base_total, 4)
            path.write_text(json.dumps(result, indent=1), encoding="utf-8")  # what is done so far
        if "explore" in runs and not a.no_ope:
            print(f"{name}: off-policy evaluation on the explore log", file=sys.stderr, flush=True)
            result["ope"] = ope(base, bundle, rewards, base / "run-explore", runs)
        path.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(json.dumps({p: {k: v for k, v in r.items() if k in ("total", "vs_exclusion", "rounds_without_reward")}
                          for p, r in result["policies"].items()}), flush=True)


if __name__ == "__main__":
    main()
