"""Offline evaluation: fit recommenders on a leak-free split and score their top-k lists.

The protocol is full ranking: each recommender ranks the whole catalogue for a user and
must leave out the user's training items itself (the Recommender contract), so a held-out
item can only be found by ranking it above every unseen item. Users are the split's test
users (optionally a subset, e.g. users with friends). Rating error (RMSE, MAE) is reported
only for recommenders that predict ratings (``PredictsRatings``) and only where the held-out
pairs carry ratings (``explicit_ratings``: the rating property, or weights on a rating scale);
elsewhere it is ``None`` (n/a). A model that only predicts ratings (``recommends`` False) is
scored on rating error alone: its ranking columns are n/a.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kgrec.recommenders.base import PredictsRatings, Recommender
from kgrec.recommenders.evaluation import ranking_metrics as metrics
from kgrec.recommenders.evaluation.explicit_ratings import rating_values
from kgrec.recommenders.evaluation.splits import Split

BEYOND = ("coverage", "novelty", "diversity", "personalisation")
RATING = ("rmse", "mae")
#: (model name, user ids, k) -> each user's top-k item ids, in the users' order.
ListSource = Callable[[str, Sequence[str], int], Iterable[list[str]]]
#: personalisation compares all pairs of lists; above this many users a seeded sample is used.
PERSONALISATION_SAMPLE = 2000


@dataclass
class ModelResult:
    """One recommender's scores on one split; ``metrics`` values are None where n/a."""

    name: str
    metrics: dict[str, float | None]
    users: int
    empty_lists: int
    fit_seconds: float
    recommend_ms: float
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class Evaluation:
    split: str
    seed: int
    k: int
    users: int
    held_out: int
    results: list[ModelResult]
    notes: list[str] = field(default_factory=list)

    def metric_names(self) -> list[str]:
        return [f"{m}@{self.k}" for m in metrics.ACCURACY] + list(BEYOND) + list(RATING)

    def best(self, metric: str) -> ModelResult:
        scored = [(value, r) for r in self.results if (value := r.metrics.get(metric)) is not None]
        return max(scored, key=lambda pair: pair[0])[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "seed": self.seed,
            "k": self.k,
            "users": self.users,
            "held_out": self.held_out,
            "notes": self.notes,
            "results": [
                {
                    "model": r.name,
                    "users": r.users,
                    "empty_lists": r.empty_lists,
                    "fit_seconds": round(r.fit_seconds, 3),
                    "recommend_ms": round(r.recommend_ms, 3),
                    "metrics": {m: _round(r.metrics.get(m)) for m in self.metric_names()},
                }
                for r in self.results
            ],
        }


    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        """Rebuild a saved evaluation (``to_dict``) for reporting; per-user values are not kept."""
        results = [
            ModelResult(name=r["model"], metrics=dict(r["metrics"]), users=r["users"], empty_lists=r["empty_lists"],
                        fit_seconds=r["fit_seconds"], recommend_ms=r["recommend_ms"])
            for r in d["results"]
        ]
        return cls(split=d["split"], seed=d["seed"], k=d["k"], users=d["users"], held_out=d["held_out"],
                   results=results, notes=list(d.get("notes", [])))


def _round(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 6)


def evaluate(
    split: Split,
    models: Mapping[str, Recommender],
    k: int = 10,
    users: Collection[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Fit each (unfitted) recommender on ``split.train`` and score it on the test users."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return score_fitted(split, fit_all(split, models, progress), k=k, users=users, progress=progress)


def fit_all(
    split: Split, models: Mapping[str, Recommender], progress: Callable[[str], None] | None = None
) -> dict[str, tuple[Recommender, float]]:
    """Fit each recommender on ``split.train``: name -> (model, fit seconds)."""
    fitted: dict[str, tuple[Recommender, float]] = {}
    for name, model in models.items():
        if progress:
            progress(f"fitting {name}")
        t0 = time.perf_counter()
        model.fit(split.train)
        fitted[name] = (model, time.perf_counter() - t0)
    return fitted


def score_fitted(
    split: Split,
    fitted: Mapping[str, tuple[Recommender, float]],
    k: int = 10,
    users: Collection[int] | None = None,
    progress: Callable[[str], None] | None = None,
    top_lists: ListSource | None = None,
) -> Evaluation:
    """Score recommenders already fitted on ``split.train`` (name -> (model, fit seconds)).

    ``top_lists`` computes the top-k item ids of many users for one model (e.g. on a batch
    engine, ``recommenders.batch``); by default each model is asked here, user by user.
    """
    test_users = split.users if users is None else sorted(set(users) & set(split.test))
    train = split.train
    item_users = np.bincount(train.interactions.indices, minlength=len(train.items))
    rng = np.random.default_rng(split.seed)
    sample = (
        set(rng.choice(test_users, size=PERSONALISATION_SAMPLE, replace=False).tolist())
        if len(test_users) > PERSONALISATION_SAMPLE
        else None
    )
    results = []
    for name, (model, fit_seconds) in fitted.items():
        if not model.recommends:  # it predicts ratings only: no lists to rank
            results.append(_rating_only(name, model, split, test_users, fit_seconds, k))
            continue
        if progress:
            progress(f"scoring {name} on {len(test_users)} users")
        per_user = {m: np.zeros(len(test_users)) for m in metrics.ACCURACY}
        lists: list[list[int]] = []
        empty = 0
        t0 = time.perf_counter()
        ids = [train.users.ids[u] for u in test_users]
        top = (top_lists(name, ids, k) if top_lists is not None
               else ([r.item_id for r in model.recommend(u, k=k)] for u in ids))
        for n, (u, item_ids) in enumerate(zip(test_users, top, strict=True)):
            ranked = [train.items.index[i] for i in item_ids if i in train.items.index]
            if not ranked:
                empty += 1
            lists.append(ranked)
            for m, v in metrics.accuracy_at_k(ranked, set(split.test[u].tolist()), k).items():
                per_user[m][n] = v
        elapsed = time.perf_counter() - t0
        values: dict[str, float | None] = {
            f"{m}@{k}": float(per_user[m].mean()) if test_users else None for m in per_user
        }
        plist = lists if sample is None else [lst for u, lst in zip(test_users, lists, strict=True) if u in sample]
        values["coverage"] = metrics.catalogue_coverage(lists, len(train.items))
        values["novelty"] = _nan_to_none(metrics.novelty(lists, item_users, len(train.users)))
        values["diversity"] = _nan_to_none(metrics.intra_list_diversity(lists, train.item_tags))
        values["personalisation"] = _nan_to_none(metrics.personalisation(plist, k, len(train.items)))
        values.update(_rating_error(model, split, set(test_users)))
        results.append(
            ModelResult(
                name=name,
                metrics=values,
                users=len(test_users),
                empty_lists=empty,
                fit_seconds=fit_seconds,
                recommend_ms=1000 * elapsed / max(1, len(test_users)),
                per_user=per_user,
            )
        )
    notes = []
    if sample is not None:
        notes.append(f"personalisation on a seeded sample of {PERSONALISATION_SAMPLE} users")
    if len(split.test_ratings) == 0:
        notes.append("held-out pairs carry no ratings: RMSE/MAE n/a")
    else:
        base = bias_baseline(split, set(test_users))
        if base is not None:
            notes.append(f"rating baseline (mean + damped user/item biases): RMSE {base[0]:.4f}, MAE {base[1]:.4f}")
    return Evaluation(
        split=split.name,
        seed=split.seed,
        k=k,
        users=len(test_users),
        held_out=int(sum(len(split.test[u]) for u in test_users)),
        results=results,
        notes=notes,
    )


def _rating_only(name: str, model: Recommender, split: Split, test_users: list[int], fit_seconds: float,
                 k: int) -> ModelResult:
    values: dict[str, float | None] = {f"{m}@{k}": None for m in metrics.ACCURACY}
    values.update(dict.fromkeys(BEYOND))
    values.update(_rating_error(model, split, set(test_users)))
    return ModelResult(name=name, metrics=values, users=len(test_users), empty_lists=0, fit_seconds=fit_seconds,
                       recommend_ms=0.0)


def _nan_to_none(x: float) -> float | None:
    return None if np.isnan(x) else x


def _rating_error(model: Recommender, split: Split, users: set[int]) -> dict[str, float | None]:
    tr = split.test_ratings
    tr = tr[np.isin(tr["user"], list(users))] if len(tr) else tr
    if not isinstance(model, PredictsRatings) or len(tr) == 0:
        return {"rmse": None, "mae": None}
    ids_u, ids_i = split.train.users.ids, split.train.items.ids
    pred = np.asarray(model.predict_ratings([ids_u[u] for u in tr["user"]], [ids_i[i] for i in tr["item"]]),
                      dtype=float)
    ok = ~np.isnan(pred)
    if not ok.any():
        return {"rmse": None, "mae": None}
    return {"rmse": metrics.rmse(pred[ok], tr["rating"][ok]), "mae": metrics.mae(pred[ok], tr["rating"][ok])}


def bias_baseline(split: Split, users: set[int], damping: float = 10.0) -> tuple[float, float] | None:
    """RMSE and MAE of the classic rating baseline μ + b_u + b_i (biases shrunk towards 0 by
    ``damping`` pseudo-ratings), fitted on the training ratings: the reference any rating
    predictor must beat. None when the training part has no ratings."""
    train = split.train
    m = train.interactions
    values = rating_values(train)
    rated = ~np.isnan(values)
    tr = split.test_ratings
    tr = tr[np.isin(tr["user"], list(users))] if len(tr) else tr
    if not rated.any() or len(tr) == 0:
        return None
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[rated]
    cols = m.indices[rated]
    r = values[rated]
    mu = r.mean()
    b_i = np.bincount(cols, r - mu, minlength=m.shape[1]) / (np.bincount(cols, minlength=m.shape[1]) + damping)
    b_u = np.bincount(rows, r - mu - b_i[cols], minlength=m.shape[0]) / (
        np.bincount(rows, minlength=m.shape[0]) + damping
    )
    pred = np.clip(mu + b_u[tr["user"]] + b_i[tr["item"]], r.min(), r.max())
    return metrics.rmse(pred, tr["rating"]), metrics.mae(pred, tr["rating"])
