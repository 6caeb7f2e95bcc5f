"""The hybrid's precomputed lists, and its diversity re-rank.

``fit`` ranks every known user once and keeps the first ``keep`` items of each list (items and
final scores, saved as mapped arrays; the hybrid keeps its whole candidate list, so a
filtered request never ranks a user again); serving reads them when the answer cannot differ
from live scoring (no excluded item beyond the user's own, and enough items kept for ``k``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from kgrec.recommenders.saved_arrays import Dim

#: How many of each known user's ranked items ``fit`` keeps for serving without scoring.
PRECOMPUTED = 200
#: Their arrays as saved (``recommenders.bundle.integrity.check_arrays``), with a ``top_`` prefix.
TOP_ARRAYS: dict[str, tuple[Dim, ...]] = {"top_indptr": (None,), "top_items": (None,), "top_scores": (None,),
                                          "top_complete": ("users",)}


@dataclass(frozen=True)
class PrecomputedLists:
    """Each user's head of the ranked list: ``items[indptr[u]:indptr[u+1]]`` with ``scores``;
    ``complete[u]`` says the head is the whole list."""

    indptr: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    complete: np.ndarray

    @classmethod
    def build(cls, n_users: int, ranked: Callable[[int], tuple[np.ndarray, np.ndarray]],
              keep: int = PRECOMPUTED) -> PrecomputedLists:
        """Rank every user with ``ranked(u) -> (candidates, scores)`` and keep each list's first ``keep``."""
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        items, scores = [], []
        complete = np.zeros(n_users, dtype=bool)
        for u in range(n_users):
            cand, score = ranked(u)
            order = np.lexsort((cand, -score))
            complete[u] = len(order) <= keep
            order = order[:keep]
            items.append(cand[order].astype(np.int32))
            scores.append(score[order])
            indptr[u + 1] = indptr[u] + len(order)
        return cls(indptr, np.concatenate(items) if items else np.zeros(0, dtype=np.int32),
                   np.concatenate(scores) if scores else np.zeros(0), complete)

    def head(self, u: int, need: int) -> tuple[np.ndarray, np.ndarray] | None:
        """User ``u``'s kept items and scores when they hold at least ``need`` (or all), else None."""
        a, b = int(self.indptr[u]), int(self.indptr[u + 1])
        if not (self.complete[u] or b - a >= need):
            return None
        return self.items[a:b], self.scores[a:b]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"top_indptr": self.indptr, "top_items": self.items, "top_scores": self.scores,
                "top_complete": self.complete}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_users: int) -> PrecomputedLists:
        if len(arrays["top_indptr"]) != n_users + 1:
            raise ValueError("precomputed lists do not match the snapshot's users")
        return cls(arrays["top_indptr"], arrays["top_items"], arrays["top_scores"], arrays["top_complete"])


def mmr(cand: np.ndarray, score: np.ndarray, order: np.ndarray, k: int, lam: float,
        tag_vectors: sp.csr_matrix) -> np.ndarray:
    """Greedy maximal marginal relevance over the first ``5k`` of ``order``: λ·relevance −
    (1 − λ)·the largest tag cosine to the items already chosen."""
    pool = order[: max(k * 5, k)]
    rel = score[pool]
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones(len(pool))
    tags = tag_vectors[cand[pool]]
    sims = (tags @ tags.T).toarray()
    chosen: list[int] = []
    best_sim = np.zeros(len(pool))
    left = np.ones(len(pool), dtype=bool)
    for _ in range(min(k, len(pool))):
        value = np.where(left, lam * rel - (1 - lam) * best_sim, -np.inf)
        j = int(np.argmax(value))
        chosen.append(j)
        left[j] = False
        best_sim = np.maximum(best_sim, sims[j])
    return pool[chosen]
