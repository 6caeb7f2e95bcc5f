"""The one top-k path: best scores first, ties by item index, only what a filter allows.

Models' own ``recommend`` and the serving read path (``recommenders.serving``) both rank with
``top_allowed``, so the contract suite, which tests models' lists, tests what production serves.
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """Indices of the k best scores, best first; ties broken by index so results are stable.
    Only positive scores count (or, without ``positive_only``, finite ones)."""
    valid = scores > 0 if positive_only else np.isfinite(scores)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, n_valid)
    masked = np.where(valid, scores, -np.inf)
    if k < len(masked):
        part = np.argpartition(-masked, k - 1)[:k]
        # everything tied with the k-th score competes, so the cut does not depend on partition order
        kth = masked[part].min()
        part = np.flatnonzero(masked >= kth)
    else:
        part = np.flatnonzero(valid)
    order = np.lexsort((part, -masked[part]))
    return part[order][:k]


def top_allowed(scores: np.ndarray, allowed: np.ndarray, k: int, positive_only: bool) -> np.ndarray:
    """``top_k`` over the items ``allowed`` (a boolean mask: not seen, not excluded, passing filters)."""
    return top_k(np.where(allowed, scores, -np.inf), k, positive_only)
