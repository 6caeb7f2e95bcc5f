"""The profile model's arithmetic: a ridge regression from one-hot attributes to the user × item
matrix (closed form, one eigendecomposition for a whole penalty grid), the per-user profile and
history scores, and NDCG@10 over held-out users — kept apart so the model file reads as the model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from kgrec.recommenders.evaluation.ranking_metrics import block_ndcg

K = 10


def wanted(targets: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Each row's target items as a dense boolean matrix (rows × items)."""
    out = np.zeros((len(targets), n_items), dtype=bool)
    for row, want in enumerate(targets):
        out[row, want] = True
    return out


def mean_ndcg(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean NDCG@10 of each row's ranking against its target items (every score may rank)."""
    return float(block_ndcg(scores, relevant, K, positive_only=False).mean()) if len(scores) else 0.0


def ridge(x: sp.csr_matrix, y: sp.csr_matrix, usable: np.ndarray, lam: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item means, attribute weights (rows of unusable attributes 0) and attribute means of a
    ridge regression of ``y`` on ``x`` with an unpenalised intercept (centred, closed form)."""
    n = max(1, x.shape[0])
    cols = np.flatnonzero(usable)
    mean = np.asarray(y.sum(axis=0)).ravel() / n
    xbar = np.asarray(x.sum(axis=0)).ravel() / n
    weights = np.zeros((x.shape[1], y.shape[1]))
    if len(cols):
        xs = x[:, cols]
        gram = (xs.T @ xs).toarray() - n * np.outer(xbar[cols], xbar[cols])
        cross = np.asarray((xs.T @ y).todense()) - n * np.outer(xbar[cols], mean)
        weights[cols] = np.linalg.solve(gram + lam * np.eye(len(cols)), cross)
    return mean, weights, xbar


def ridge_predictions(x: sp.csr_matrix, y: sp.csr_matrix, x_new: sp.csr_matrix, usable: np.ndarray,
                      grid: Sequence[float]) -> Iterator[np.ndarray]:
    """``ridge``'s predictions for the rows of ``x_new``, one matrix per penalty of ``grid``, one at
    a time (one eigendecomposition of the Gram matrix serves them all)."""
    n = max(1, x.shape[0])
    mean = np.asarray(y.sum(axis=0)).ravel() / n
    cols = np.flatnonzero(usable)
    if len(cols) == 0:
        for _ in grid:
            yield np.tile(mean, (x_new.shape[0], 1))
        return
    xbar = np.asarray(x.sum(axis=0)).ravel()[cols] / n
    xs = x[:, cols]
    gram = (xs.T @ xs).toarray() - n * np.outer(xbar, xbar)
    cross = np.asarray((xs.T @ y).todense()) - n * np.outer(xbar, mean)
    values, vectors = np.linalg.eigh(gram)
    left = (x_new[:, cols].toarray() - xbar) @ vectors
    right = vectors.T @ cross
    for lam in grid:
        yield mean + (left / (values + lam)) @ right


def profile_scores(attrs: np.ndarray, mean: np.ndarray, weights: np.ndarray, xbar: np.ndarray, used: np.ndarray,
                   kind_of: np.ndarray, n_kinds: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """``mean + Σ_{given kinds} (Σ_{a of the kind} W[a] − the kind's mean share)``."""
    attrs = attrs[used[attrs] > 0] if len(attrs) else attrs
    scores = np.array(mean, dtype=np.float64, copy=True)
    if len(attrs) == 0:
        return scores
    scores += weights[attrs].sum(axis=0)
    for k in np.unique(kind_of[attrs]).tolist():
        if offsets is not None:
            scores -= offsets[k]
        else:
            cols = np.flatnonzero((kind_of == k) & (used > 0))
            scores -= xbar[cols] @ weights[cols]
    return scores


def history_scores(items: np.ndarray, y: sp.csr_matrix, y_csc: sp.csc_matrix, audience: np.ndarray,
                   rate: np.ndarray, smoothing: float) -> np.ndarray:
    """Mean over ``items`` j of ``(n_ji + s·p_i) / (n_j + s)``: how often people who chose j chose i."""
    w = 1.0 / (audience[items] + smoothing)
    users = y_csc[:, items] @ w
    return (y.T @ users + smoothing * rate * w.sum()) / len(items)
