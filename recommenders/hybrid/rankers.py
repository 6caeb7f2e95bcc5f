"""The hybrid's learned rankers: a logistic regression and LightGBM's LambdaMART.

Both learn from the validation cut's candidate lists (one group per user, label = held out)
and score a user's candidates; both split a score into per-feature parts, which is how the
hybrid decides which components explain an item.

- ``logistic``: scikit-learn's logistic regression on the standardised features and their
  squares (pointwise); a part is a feature's weighted, standardised value (plain + square).
- ``lambdarank``: a LightGBM ranker with the listwise LambdaRank objective, which optimises
  NDCG of each user's list directly; a part is the feature's SHAP contribution
  (``pred_contrib``). Trained deterministically (``deterministic``, row-wise histograms, a
  seed) on one thread: LightGBM's OpenMP threads spin while they wait, and on a busy 2-core
  machine two of them made a tiny fit take a quarter of a second per round. Saved as
  LightGBM's own text model, never pickled.

Which one serves is decided on validation (``recommenders.hybrid_selection``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from kgrec.recommenders.saved_arrays import Dim

RANKERS = ("logistic", "lambdarank")
#: LightGBM settings: small, well-supported trees and a fixed number of rounds (no early
#: stopping, which would need a third user fold). The labels are noisy — an unlabelled
#: candidate may well be liked — so more capacity overfits: on both shared datasets' cuts
#: (out of fold) 7 leaves of ≥ 400 rows beat 15 of ≥ 100 (Last.fm 2K 0.1885 vs 0.1857,
#: ml-latest-small 0.2268 vs 0.2127), and 250 rounds or 31 leaves did worse.
LGBM_PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 400,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambdarank_truncation_level": 20,
    "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbosity": -1,
}
LGBM_ROUNDS = 150


class Ranker(ABC):
    kind: ClassVar[str]
    #: The numeric arrays ``state`` returns (its other values are ``*_json``), declared for
    #: ``recommenders.integrity.check_arrays`` when a hybrid is loaded.
    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {}

    @abstractmethod
    def fit(self, rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], seed: int) -> Ranker: ...

    @abstractmethod
    def score(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def parts(self, x: np.ndarray) -> np.ndarray:
        """Per-feature parts of each row's score (n × features)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """What ``restore`` needs: numeric arrays (npz) and JSON values (``*_json`` keys)."""

    @classmethod
    @abstractmethod
    def restore(cls, state: dict[str, Any]) -> Ranker: ...


class LogisticRanker(Ranker):
    kind: ClassVar[str] = "logistic"
    #: Weights and standardisation of the features and their squares.
    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"weights": (None,), "mean": (None,), "std": (None,)}

    def __init__(self, regularisation: float = 1.0) -> None:
        self.regularisation = regularisation

    def fit(self, rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], seed: int) -> LogisticRanker:
        from sklearn.linear_model import LogisticRegression

        x = np.vstack(rows)
        y = np.concatenate(labels)
        n = x.shape[1]
        if not y.any() or y.all():  # nothing to learn from: equal votes by reciprocal rank
            self.mean, self.std = np.zeros(2 * n), np.ones(2 * n)
            self.weights = np.zeros(2 * n)
            return self
        xx = np.hstack([x, x**2])
        self.mean, self.std = xx.mean(axis=0), xx.std(axis=0)
        self.std[self.std == 0] = 1.0
        lr = LogisticRegression(C=1.0 / self.regularisation, max_iter=1000, random_state=seed)
        lr.fit((xx - self.mean) / self.std, y)
        self.weights = lr.coef_.ravel().astype(np.float64)
        return self

    def parts(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        p = (np.hstack([x, x**2]) - self.mean) / self.std * self.weights
        return p[:, :n] + p[:, n:]

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.parts(x).sum(axis=1)

    def state(self) -> dict[str, Any]:
        return {"weights": self.weights, "mean": self.mean, "std": self.std}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> LogisticRanker:
        r = cls()
        r.weights, r.mean, r.std = state["weights"], state["mean"], state["std"]
        return r


class LambdaRanker(Ranker):
    kind: ClassVar[str] = "lambdarank"  # its trees are LightGBM's text model, a ``*_json`` value

    def fit(self, rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], seed: int) -> LambdaRanker:
        import lightgbm as lgb

        data = lgb.Dataset(np.vstack(rows), label=np.concatenate(labels).astype(np.float64),
                           group=[len(r) for r in rows], free_raw_data=True)
        params = {**LGBM_PARAMS, "seed": seed}
        self.booster = lgb.train(params, data, num_boost_round=LGBM_ROUNDS)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)

    def parts(self, x: np.ndarray) -> np.ndarray:
        contrib = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)
        return contrib[:, :-1]  # the last column is the expected value, the same for every row

    def state(self) -> dict[str, Any]:
        return {"model_json": self.booster.model_to_string()}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> LambdaRanker:
        import lightgbm as lgb

        r = cls()
        r.booster = lgb.Booster(model_str=state["model_json"])
        return r


def make_ranker(kind: str, regularisation: float = 1.0) -> Ranker:
    if kind == "logistic":
        return LogisticRanker(regularisation)
    if kind == "lambdarank":
        return LambdaRanker()
    raise ValueError(f"unknown ranker {kind!r}; expected one of {', '.join(RANKERS)}")


def ranker_class(kind: str) -> type[Ranker]:
    classes: dict[str, type[Ranker]] = {"logistic": LogisticRanker, "lambdarank": LambdaRanker}
    return classes[kind]


def restore_ranker(kind: str, state: dict[str, Any]) -> Ranker:
    return ranker_class(kind).restore(state)
