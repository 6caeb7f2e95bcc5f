"""Peer recommenders for the quality benchmark: the usual baselines of the literature.

Each peer is fitted on the binary user×item matrix of a training snapshot and scores one
user over all items; ``PeerRecommender`` puts that behind ``recommend`` so peers go
through exactly the evaluation loop kgrec's own recommenders go through (full ranking,
training items excluded). Peers are for benchmarking only: no explanations, no save/load.

- popularity: audience size.
- ItemKNN cosine / BM25: ``implicit.nearest_neighbours`` (K neighbours per item).
- ALS / BPR: ``implicit`` matrix factorisation on CPU.
- EASE (Steck 2019): closed form B = I − P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹, computed on
  items with at least ``min_users`` (3) training users: inverting the full 18k×18k Gram
  matrix of Last.fm needs several GB and minutes per λ on 2 shared cores; items seen by one
  or two users are rarely a held-out hit — others score 0.
- RP3β (Paudel et al. 2017): W = (P_iu^α · P_ui^α) / pop^β, top-K per row, no self-loops.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Reason, Recommendation, Recommender
from kgrec.recommenders.models.sparse_rows import keep_top_per_row, row_normalise
from kgrec.recommenders.ranking import top_k

Scorer = Callable[[int], np.ndarray]
FitFn = Callable[[sp.csr_matrix, dict[str, Any], int], Scorer]


def binary(snapshot: GraphSnapshot) -> sp.csr_matrix:
    x = sp.csr_matrix(snapshot.interactions, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


class PeerRecommender(Recommender):
    """A peer model behind the Recommender protocol, for the evaluation loop only."""

    additive = False

    def __init__(self, name: str, fit_fn: FitFn, params: dict[str, Any], seed: int = 42, threads: int = 1) -> None:
        self.name = name  # type: ignore[misc]
        self.fit_fn, self.params, self.seed, self.threads = fit_fn, params, seed, threads

    def fit(self, snapshot: GraphSnapshot) -> PeerRecommender:
        self.snapshot = snapshot
        self.x = binary(snapshot)
        self.score = self.fit_fn(self.x, {**self.params, "threads": self.threads}, self.seed)
        return self

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        u = self.snapshot.users.get(user_id)
        if u is None:
            return []
        s = np.array(self.score(u), dtype=np.float64)
        s[self.x.indices[self.x.indptr[u] : self.x.indptr[u + 1]]] = -np.inf
        return [Recommendation(self.snapshot.items.ids[j], float(s[j]), self.name)
                for j in top_k(s, k, positive_only=False)]

    def explain(self, user_id: str, item_id: str) -> list[Reason]:
        return []

    def save(self, directory: str | Path) -> None:
        raise NotImplementedError("benchmark peers are not saved")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> PeerRecommender:
        raise NotImplementedError("benchmark peers are not saved")


def fit_popularity(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    pop = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    return lambda u: pop


def _similarity_scorer(x: sp.csr_matrix, sim: sp.csr_matrix) -> Scorer:
    sim = sp.csr_matrix(sim, dtype=np.float64)
    return lambda u: np.asarray((x[u] @ sim).todense()).ravel()


def fit_itemknn_cosine(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    from implicit.nearest_neighbours import CosineRecommender

    model = CosineRecommender(K=p["K"], num_threads=p["threads"])
    model.fit(x, show_progress=False)
    return _similarity_scorer(x, model.similarity)


def fit_itemknn_bm25(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    from implicit.nearest_neighbours import BM25Recommender

    model = BM25Recommender(K=p["K"], K1=p["K1"], B=p["B"], num_threads=p["threads"])
    model.fit(x, show_progress=False)
    return _similarity_scorer(x, model.similarity)


def _factor_scorer(model: Any) -> Scorer:
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return lambda u: items @ users[u]


def fit_als(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    model = AlternatingLeastSquares(factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                                    iterations=p.get("iterations", 15), random_state=seed, num_threads=p["threads"])
    with threadpool_limits(1, "blas"):  # implicit's own threads do the work; BLAS threads only contend
        model.fit(x, show_progress=False)
    return _factor_scorer(model)


def fit_bpr(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    from implicit.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(factors=p["factors"], learning_rate=p["learning_rate"],
                                        regularization=p["regularization"], iterations=p.get("iterations", 100),
                                        random_state=seed, num_threads=p["threads"])
    model.fit(x, show_progress=False)
    return _factor_scorer(model)


def fit_ease(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    counts = np.asarray(x.sum(axis=0)).ravel()
    keep = np.flatnonzero(counts >= p.get("min_users", 2))
    xs = sp.csr_matrix(x[:, keep], dtype=np.float64)
    gram = (xs.T @ xs).toarray()
    gram[np.diag_indices_from(gram)] += p["lambda"]
    inv = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    b = np.ascontiguousarray(inv / (-np.diag(inv)))
    b[np.diag_indices_from(b)] = 0.0
    position = np.full(x.shape[1], -1)
    position[keep] = np.arange(len(keep))
    n_items = x.shape[1]

    def score(u: int) -> np.ndarray:
        mine = position[x.indices[x.indptr[u] : x.indptr[u + 1]]]
        out = np.zeros(n_items)
        out[keep] = b[mine[mine >= 0]].sum(axis=0)  # binary user row: sum of B's rows
        return out

    return score


def fit_rp3beta(x: sp.csr_matrix, p: dict[str, Any], seed: int) -> Scorer:
    alpha, beta = p["alpha"], p["beta"]
    p_ui = row_normalise(x)
    p_iu = row_normalise(sp.csr_matrix(x.T))
    p_ui.data **= alpha
    p_iu.data **= alpha
    w = sp.csr_matrix(p_iu @ p_ui)
    pop = np.asarray(x.sum(axis=0)).ravel()
    inv_pop = np.where(pop > 0, np.power(np.maximum(pop, 1), -beta), 0.0)
    w = sp.csr_matrix(w @ sp.diags(inv_pop))
    w.setdiag(0.0)
    w = keep_top_per_row(w, p["K"])
    return _similarity_scorer(x, w)


#: name -> (fit function, small tuning grid). Grids are chosen on a validation cut of train.
PEERS: dict[str, tuple[FitFn, list[dict[str, Any]]]] = {
    "peer:popularity": (fit_popularity, [{}]),
    "peer:itemknn-cosine": (fit_itemknn_cosine, [{"K": k} for k in (400, 800, 1600)]),
    "peer:itemknn-bm25": (fit_itemknn_bm25, [{"K": k, "K1": 1.2, "B": b} for k in (800, 1600) for b in (0.0, 0.25)]),
    "peer:als": (fit_als, [{"factors": 64, "regularization": 0.01, "alpha": a} for a in (10.0, 30.0)]),
    "peer:bpr": (fit_bpr, [{"factors": f, "learning_rate": 0.01, "regularization": 0.01} for f in (64, 128)]),
    "peer:ease": (fit_ease, [{"lambda": lam, "min_users": 3} for lam in (100.0, 200.0, 500.0)]),
    "peer:rp3beta": (fit_rp3beta, [{"alpha": a, "beta": b, "K": 200}
                                   for a in (0.5, 0.8) for b in (0.2, 0.35, 0.5)]),
}
