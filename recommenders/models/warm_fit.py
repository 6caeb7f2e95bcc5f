"""Warm-started fitting (``kgrec train --warm-start OLD_BUNDLE``), the same way for every model.

A model that ``StartsWarm`` (kge, multvae, als) calls ``warm_fit(self, snapshot, ctx, adapter)``
from its ``fit``; the adapter (``recommenders.models.warm_adapters``) knows the model's
parameters, the driver here decides and records. False means "fit cold" (the model then runs its
usual fit); ``model.warm_record`` says why, and ``kgrec train`` writes it to the manifest.

1. **Guards before any work** — train cold when the old bundle has no such model, when the
   settings that fix the parameters' shapes changed (``warm_shape``: kge model, dim, inverse,
   dropped relations; multvae hidden and latent sizes; als factors), when more than ``max_new``
   of the new graph's users or items are new to the old one (not across graphs), or after
   ``max_chain`` consecutive warm starts (a cold fit now and then stops drift).
2. **Validated warm phase.** The old model has seen almost every pair of the new graph, so a
   random holdout would favour it; the validation targets are instead a seeded half (at least
   one, never a user's last pair) of each user's pairs that are **new since the old bundle**
   between users and items the old graph has (``new_pair_cut``): no starting point has seen
   them, and they are a random sample of ordinary pairs, where the pairs of brand-new items
   would reward a start that ranks new items first for everyone. Start from the old model on the rest
   (shared rows copied by label, new rows from their neighbours, rescaled), score NDCG@10 of a
   seeded user sample before any training (epoch 0) and after each epoch, at most
   ``ceil(epoch_share × the model's cold epochs)`` epochs, stopping after ``patience`` epochs
   without a gain; the best epoch wins, epoch 0 included, so a warm start never ships worse than
   its own starting point on new data. Fewer than ``MIN_USERS`` users with new pairs: nothing to
   validate on, one epoch from the old model.
3. **Quality guard** (``check_cold``): also fit the model cold on the same cut and train cold
   when the best warm value is below ``(1 − tolerance) ×`` the cold one (a paired comparison; it
   costs a cold fit, so it is asked for, e.g. every few releases). Without it the record says so.
4. **Final fit** on the whole graph: from the best validated state (matched by label again),
   ``FINAL_EPOCHS`` more so the held-out pairs are learned too; when epoch 0 was best, the old
   model's start as it is.

``WarmStart`` options: ``max_new`` (0.2), ``max_chain`` (5), ``epoch_share`` (0.25) and
``patience`` (1) as above; ``max_users`` validation users scored per epoch (2,000);
``check_cold`` / ``tolerance`` (0.01) the paired check; ``across``: the old bundle is of another
graph sharing entities (pre-train there, fine-tune here): no share-of-new guard (the CLI also
allows all the cold epochs); ``tag_names``: tags also match by normalised name
(``embeddings.warm_init.normalised_name``; users and items match by id only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext, Recommender, StartsWarm, WarmStart
from kgrec.recommenders.evaluation.splits import Split, _apply
from kgrec.recommenders.evaluation.validation_cut import UserSample, user_ndcg

#: Epochs trained on the whole graph after the validated phase (when it trained at all).
FINAL_EPOCHS = 1
#: Users with held-out new pairs needed to validate at all.
MIN_USERS = 10
#: Called with an epoch (0: the start) and the state then; True stops training.
AfterEpoch = Callable[[int, Any], bool]


class WarmAdapter(Protocol):
    """What the driver needs from a model: its cold training length, its parameters as labelled
    arrays (a *state*), training from a state, and serving a state."""

    def cold_epochs(self) -> int: ...

    def source(self, old: Recommender) -> Any:
        """The old fitted model's parameters as a state (rows labelled by id)."""

    def train(self, snapshot: GraphSnapshot, source: Any, epochs: int,
              after_epoch: AfterEpoch | None) -> tuple[Any, dict[str, Any]]:
        """Start on ``snapshot`` from ``source`` (matched by label, new rows initialised), call
        ``after_epoch(0, state)`` and then after each epoch (True stops), train at most
        ``epochs``; the last state and what the initialisation did."""

    def attach(self, model: Recommender, snapshot: GraphSnapshot, state: Any) -> None:
        """Serve ``state`` from ``model`` (already ``_start``-ed on ``snapshot``)."""


def new_shares(old: GraphSnapshot, new: GraphSnapshot) -> dict[str, float]:
    """The share of the new graph's users and items that the old graph lacks."""
    def share(old_ids: Any, new_ids: tuple[str, ...]) -> float:
        return sum(1 for x in new_ids if x not in old_ids) / max(1, len(new_ids))

    return {"users": round(share(old.users, new.users.ids), 4), "items": round(share(old.items, new.items.ids), 4)}


def new_pairs(old: GraphSnapshot, new: GraphSnapshot) -> np.ndarray:
    """For each stored entry of ``new.interactions`` (CSR order), whether the old graph lacks
    that (user, item) pair."""
    m = new.interactions
    users = np.array([old.users.get(u) if old.users.get(u) is not None else -1 for u in new.users.ids], dtype=np.int64)
    items = np.array([old.items.get(i) if old.items.get(i) is not None else -1 for i in new.items.ids], dtype=np.int64)
    ou = np.repeat(users, np.diff(m.indptr))
    oi = items[m.indices]
    fresh = (ou < 0) | (oi < 0)
    both = np.flatnonzero(~fresh)
    if len(both):
        seen = np.asarray(old.interactions[ou[both], oi[both]]).ravel() != 0
        fresh[both[~seen]] = True
    return fresh


def new_pair_cut(old: GraphSnapshot, new: GraphSnapshot, seed: int) -> Split:
    """``new`` without a seeded half (≥ 1) of each user's pairs that ``old`` lacks between a user
    and an item it has (never the user's last pair); those pairs are the test side."""
    m = new.interactions
    known_users = np.array([u in old.users for u in new.users.ids], dtype=bool)
    known_items = np.array([i in old.items for i in new.items.ids], dtype=bool)
    fresh = new_pairs(old, new) & np.repeat(known_users, np.diff(m.indptr)) & known_items[m.indices]
    rng = np.random.default_rng(seed)
    held = np.zeros(m.nnz, dtype=bool)
    for u in range(m.shape[0]):
        a, b = m.indptr[u], m.indptr[u + 1]
        mine = a + np.flatnonzero(fresh[a:b])
        k = min(math.ceil(len(mine) / 2), (b - a) - 1)
        if k >= 1:
            held[rng.choice(mine, size=k, replace=False)] = True
    return _apply(new, held, "new-pairs", seed)


def _cut(warm: WarmStart, snapshot: GraphSnapshot, seed: int) -> tuple[Split, np.ndarray]:
    """The new-pair cut of ``snapshot`` and its user sample, computed once per run."""
    key = f"cut:{snapshot.fingerprint}:{seed}"
    if key not in warm.cache:
        cut = new_pair_cut(warm.snapshot, snapshot, seed)
        users = UserSample.of(cut, seed, warm.max_users).users if cut.test else np.zeros(0, dtype=np.int64)
        warm.cache[key] = (cut, users)
    found: tuple[Split, np.ndarray] = warm.cache[key]
    return found


def _guard(model: Recommender, old: Recommender | None, warm: WarmStart, record: dict[str, Any]) -> str | None:
    """Why the model must train cold before any work, or None."""
    if old is None:
        return f"the old bundle has no {model.name} model"
    if type(old) is not type(model) or not isinstance(old, StartsWarm) or not isinstance(model, StartsWarm):
        return f"the old {model.name} is another kind of model"
    before, now = old.warm_shape(), model.warm_shape()
    changed = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
    if changed:
        return "its shape changed: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
    chain = int(record["chain"])
    if chain >= warm.max_chain:
        return f"{chain} warm starts in a row: a cold fit every {warm.max_chain + 1}"
    if not warm.across:
        shares = record["new"]
        worst = max(shares, key=shares.get)
        if shares[worst] > warm.max_new:
            return (f"too much is new: {shares[worst]:.1%} of the {worst} are new to the old bundle "
                    f"(at most {warm.max_new:.0%})")
    return None


def _ndcg(model: Recommender, adapter: WarmAdapter, cut: Split, users: np.ndarray, state: Any) -> float:
    probe = type(model)(model.config)
    probe._start(cut.train)  # type: ignore[attr-defined]
    adapter.attach(probe, cut.train, state)
    return float(np.mean(user_ndcg(probe, cut, users)))


def warm_fit(model: Recommender, snapshot: GraphSnapshot, ctx: FitContext | None, adapter: WarmAdapter) -> bool:
    """Fit ``model`` warm from ``ctx.warm`` when the guards allow (see the module docstring):
    True when it did; False to fit cold. Sets ``model.warm_record`` either way (None without a
    warm start)."""
    warm = ctx.warm if ctx is not None else None
    if not isinstance(model, StartsWarm):
        raise TypeError(f"{model.name} does not start warm")
    if warm is None:
        model.warm_record = None
        return False
    started = time.process_time()
    record: dict[str, Any] = {"decision": "cold", "chain": int(warm.history.get(model.name, {}).get("chain", 0)),
                              "new": new_shares(warm.snapshot, snapshot)}
    model.warm_record = record
    old = warm.old(model.name)
    reason = _guard(model, old, warm, record)
    if reason is not None or old is None:
        record.update(reason=f"trained cold: {reason}", chain=0)
        return False
    seed = int(getattr(model.config, "seed", 42))
    cut, users = _cut(warm, snapshot, seed)
    limit = max(1, math.ceil(warm.epoch_share * adapter.cold_epochs()))
    source = adapter.source(old)
    curve: list[tuple[int, float]] = []
    best: dict[str, Any] = {"epoch": 0, "value": -1.0, "state": None}
    if len(users) >= MIN_USERS:
        def after_epoch(epoch: int, state: Any) -> bool:
            value = _ndcg(model, adapter, cut, users, state)
            curve.append((epoch, round(value, 5)))
            if value > best["value"]:
                best.update(epoch=epoch, value=value, state=state)
            return epoch - int(best["epoch"]) >= warm.patience

        record["init"] = adapter.train(cut.train, source, limit, after_epoch)[1]
        record.update(curve=curve, validation="held-out pairs new since the old bundle", validation_users=len(users),
                      max_epochs=limit, best_epoch=best["epoch"], validation_ndcg=round(float(best["value"]), 5))
        final = FINAL_EPOCHS if best["epoch"] > 0 else 0
        start = best["state"] if final else source
    else:
        record.update(validation=f"none: {len(users)} users with new pairs (fewer than {MIN_USERS})")
        final, start = FINAL_EPOCHS, source
    if warm.check_cold and len(users) >= MIN_USERS:
        cold = type(model)(model.config).fit(cut.train)
        cold_value = float(np.mean(user_ndcg(cold, cut, users)))
        record["cold_validation_ndcg"] = round(cold_value, 5)
        if best["value"] < (1.0 - warm.tolerance) * cold_value:
            record.update(reason=(f"trained cold: warm fell short on validation (NDCG@10 {best['value']:.4f} < "
                                  f"{1 - warm.tolerance:.2f} x cold {cold_value:.4f})"), chain=0,
                          cpu_seconds=round(time.process_time() - started, 2))
            return False
    state, init = adapter.train(snapshot, start, final, None)
    record.setdefault("init", init)  # how the old model's rows were matched (on the cut when it validated)
    model._start(snapshot)  # type: ignore[attr-defined]
    adapter.attach(model, snapshot, state)
    checked = (f", cold {record['cold_validation_ndcg']:.4f}" if "cold_validation_ndcg" in record
               else "; not compared with a cold fit (--warm-check does)")
    record.update(decision="warm", chain=record["chain"] + 1, final_epochs=final,
                  epochs_trained=sum(1 for e, _ in curve if e > 0) + final,
                  cpu_seconds=round(time.process_time() - started, 2),
                  reason=(f"warm start: best validation NDCG@10 {best['value']:.4f} at epoch {best['epoch']} of "
                          f"{limit} (epoch 0 = the old model){checked}; then {final} epoch(s) on the whole graph"
                          if curve else f"warm start: {record['validation']}; {final} epoch(s) on the whole graph"))
    return True
