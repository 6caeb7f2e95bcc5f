"""Matrix factorisation through the ``implicit`` library: ALS and BPR.

Factors are trained by implicit on the CPU (``num_threads``, ``random_state=seed``) and
saved as plain ``.npz`` arrays, never as pickled implicit models.

ALS is additive: with item factors Y fixed, the user's factors are the least-squares
solution ``x_u = W_u Y^T C_u p_u``, so ``score(u, i) = sum_j c_uj * y_i^T W_u y_j`` — one
term per item j you chose (Hu, Koren & Volinsky 2008, section 5), which is what
``implicit``'s ``explain`` returns. After fitting, the user factors are re-solved in
float64 from the final item factors so the scores served are exactly the ones explained.
BPR is not additive: its reasons are your items nearest to the recommended one in factor
space, labelled as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight
from threadpoolctl import threadpool_limits

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext, FitCost, Reason, StartsWarm, TopReasons, Tunable
from kgrec.recommenders.config import AtLeastOne, ModelConfig, NonNegative, Positive
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.models.sparse_rows import graded, interaction_weights
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

if TYPE_CHECKING:
    import optuna
    from implicit.cpu.als import AlternatingLeastSquares


def _confidence(snapshot: GraphSnapshot, scheme: str) -> sp.csr_matrix:
    if scheme == "bm25":
        x = bm25_weight(interaction_weights(snapshot, "raw").tocoo(), K1=100, B=0.8)
        return sp.csr_matrix(x, dtype=np.float32)
    return sp.csr_matrix(interaction_weights(snapshot, scheme), dtype=np.float32)


#: What both factor models save: one row of factors per user and per item.
FACTORS: dict[str, tuple[Dim, ...]] = {"user_factors": ("users", None), "item_factors": ("items", None)}


@dataclass(frozen=True)
class ALSConfig(ModelConfig):
    """``confidence``: how interactions become ALS confidences (``binary``, ``log``,
    ``raw`` or ``bm25``), scaled by ``alpha``. ``factors`` is capped at one per
    ``users_per_factor`` users, so a small graph is not over-parameterised. Defaults chosen
    on a Last.fm 2K validation cut (binary confidence × 10 beat log, BM25 and × 30)."""

    factors: Annotated[int, AtLeastOne] = 64
    regularization: Annotated[float, NonNegative] = 0.05
    alpha: Annotated[float, Positive] = 10.0
    iterations: Annotated[int, AtLeastOne] = 15
    confidence: Literal["binary", "log", "raw", "bm25"] = "binary"
    users_per_factor: Annotated[int, AtLeastOne] = 8
    num_threads: Annotated[int, NonNegative] = 2


@register("als", fit_cost=FitCost(nnz=0.8, fixed=0.3), default_rank=5, hybrid_rank=4)
class ALS(ScoredRecommender, StartsWarm, Tunable):
    Config = ALSConfig
    config: ALSConfig
    positive_only: ClassVar[bool] = False
    #: implicit's model over the fitted factors, built on the first explanation.
    _implicit: AlternatingLeastSquares | None

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """Factors, regularisation and the confidence scale (log scales); log or BM25
        confidence only where weights differ."""
        out: dict[str, Any] = {
            "factors": trial.suggest_int("factors", 16, 256, log=True),
            "regularization": trial.suggest_float("regularization", 1e-3, 10.0, log=True),
            "alpha": trial.suggest_float("alpha", 1.0, 100.0, log=True),
        }
        if graded(snapshot):
            out["confidence"] = trial.suggest_categorical("confidence", ["binary", "log", "bm25"])
        return out

    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> ALS:
        """Factorise ``snapshot``; with ``ctx.warm`` (``kgrec train --warm-start``) start from the
        old bundle's factors when the guards allow (``recommenders.models.warm_fit``)."""
        self._start(snapshot)
        if ctx is None or ctx.warm is None:
            self.warm_record = None
            self._fit(snapshot)
            return self
        from kgrec.recommenders.models.warm_adapters import ALSWarm
        from kgrec.recommenders.models.warm_fit import warm_fit

        if not warm_fit(self, snapshot, ctx, ALSWarm(self, ctx.warm)):
            self._fit(snapshot)
        return self

    def warm_shape(self) -> dict[str, Any]:
        """The factors it has (fitted) or would have on its snapshot (capped by its users)."""
        items = getattr(self, "_items", None)
        if items is not None:
            return {"factors": int(items.shape[1])}
        n_users = len(self.snapshot.users) if self.snapshot is not None else 0
        return {"factors": max(1, min(self.config.factors, n_users // max(1, self.config.users_per_factor)))}

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self._conf = _confidence(snapshot, self.config.confidence)

    def _model(self, factors: int) -> AlternatingLeastSquares:
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        return AlternatingLeastSquares(
            factors=factors, regularization=c.regularization, alpha=c.alpha, iterations=c.iterations,
            calculate_training_loss=False, num_threads=c.num_threads, random_state=c.seed,
        )

    def _fit(self, snapshot: GraphSnapshot) -> None:
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads would fight them
            n_users = self._conf.shape[0]
            model = self._model(max(1, min(self.config.factors, n_users // max(1, self.config.users_per_factor))))
            model.fit(self._conf.copy(), show_progress=False)  # implicit writes through its input's buffers
            self._items = np.asarray(model.item_factors, dtype=np.float64)
            self._users = self._solve_users()  # thousands of small solves: one BLAS thread is fastest
        self._implicit = None

    def _solve_users(self) -> np.ndarray:
        """Exact float64 user factors for the final item factors (what explain decomposes)."""
        c, y = self.config, self._items
        base = y.T @ y + c.regularization * np.eye(y.shape[1])
        out = np.zeros((self._conf.shape[0], y.shape[1]))
        conf = self._conf
        for u in range(conf.shape[0]):
            a, b = conf.indptr[u], conf.indptr[u + 1]
            if a == b:
                continue
            yu = y[conf.indices[a:b]]
            cu = c.alpha * conf.data[a:b].astype(np.float64)
            out[u] = np.linalg.solve(base + (yu.T * (cu - 1.0)) @ yu, yu.T @ cu)
        return out

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = FACTORS

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self._users, "item_factors": self._items}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._users, self._items = arrays["user_factors"], arrays["item_factors"]
        self._implicit = None

    def _scores(self, u: int) -> np.ndarray | None:
        if self._conf.indptr[u] == self._conf.indptr[u + 1]:
            return None
        return np.einsum("if,f->i", self._items, self._users[u])  # no BLAS threads: steady latency

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        """implicit's decomposition (``explain``: ``s_ij = y_i^T W_u^-1 y_j c_uj``, Hu, Koren &
        Volinsky 2008, section 5) for all the user's items in one matrix product. implicit
        factors ``W_u`` (Cholesky) once per user, kept for the last user asked about (a served
        list explains k items of one user in a row); only the ``limit`` largest become Reasons."""
        if self._implicit is None:
            with threadpool_limits(1, "blas"):
                model = self._model(self._items.shape[1])
            model.item_factors = self._items
            model.user_factors = self._users
            self._implicit = model
        row = self._conf[u]
        implicit = self._implicit
        weights = self._per_user(u, lambda: implicit.explain(0, row, i, N=0)[2])
        conf = row.data.astype(np.float64) * self._implicit.alpha
        mine = row.indices[conf >= 0]
        shares = (self._items[mine] @ scipy.linalg.cho_solve(weights, self._items[i])) * conf[conf >= 0]
        order = np.lexsort((-mine, -shares))  # implicit's order: by share, then by item, both descending
        n = len(order) if limit is None else max(0, min(limit, len(order)))
        snap = self._snap()
        reasons = []
        for j, share in zip(mine[order[:n]].tolist(), shares[order[:n]].tolist(), strict=True):
            text = f"You chose {snap.title(j)}, whose factors point towards {snap.title(i)} ({share:+.3f})"
            reasons.append(self._paths.own_item(u, j, share, text))
        rest = shares[order[n:]]
        return TopReasons(tuple(reasons), len(rest), float(rest.sum()), float(np.abs(rest).sum()))


@dataclass(frozen=True)
class BPRConfig(ModelConfig):
    factors: Annotated[int, AtLeastOne] = 64
    learning_rate: Annotated[float, Positive] = 0.01
    regularization: Annotated[float, NonNegative] = 0.01
    iterations: Annotated[int, AtLeastOne] = 100
    evidence: Annotated[int, NonNegative] = 5


@register("bpr", fit_cost=FitCost(nnz=1.8), default_rank=6, hybrid_rank=9)
class BPR(ScoredRecommender, Tunable):
    """Bayesian personalised ranking; single-threaded so that a seed fixes the result."""

    Config = BPRConfig
    config: BPRConfig
    additive: ClassVar[bool] = False
    positive_only: ClassVar[bool] = False

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        return {
            "factors": trial.suggest_int("factors", 16, 256, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
            "regularization": trial.suggest_float("regularization", 1e-4, 0.1, log=True),
        }

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self._binary = interaction_weights(snapshot, "binary")  # shared, read-only

    def _fit(self, snapshot: GraphSnapshot) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        model = BayesianPersonalizedRanking(
            factors=c.factors, learning_rate=c.learning_rate, regularization=c.regularization,
            iterations=c.iterations, num_threads=1, random_state=c.seed,
        )
        model.fit(sp.csr_matrix(self._binary, dtype=np.float32, copy=True), show_progress=False)
        self._users = np.asarray(model.user_factors, dtype=np.float64)
        self._items = np.asarray(model.item_factors, dtype=np.float64)

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = FACTORS

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self._users, "item_factors": self._items}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._users, self._items = arrays["user_factors"], arrays["item_factors"]

    def _scores(self, u: int) -> np.ndarray | None:
        if self._binary.indptr[u] == self._binary.indptr[u + 1]:
            return None
        return np.einsum("if,f->i", self._items, self._users[u])  # no BLAS threads: steady latency

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        b = self._binary
        mine = b.indices[b.indptr[u] : b.indptr[u + 1]]
        vecs = self._items[:, :-1]  # the last column is the item bias
        target = vecs[i]
        norms = np.linalg.norm(vecs[mine], axis=1) * (np.linalg.norm(target) or 1.0)
        cos = np.divide(vecs[mine] @ target, norms, out=np.zeros(len(mine)), where=norms > 0)
        order = np.lexsort((mine, -cos))[: self.config.evidence]
        snap = self._snap()
        return [
            self._paths.own_item(
                u, int(mine[o]), float(cos[o]),
                f"You chose {snap.title(int(mine[o]))}, close to {snap.title(i)} in taste space "
                f"(cosine {cos[o]:.2f})",
                kind="evidence",
            )
            for o in order
        ]
