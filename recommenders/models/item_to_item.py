"""Recommenders that score ``user weights @ item×item matrix`` (item-CF, association rules).

The score of item i for user u is ``sum_j w(u, j) * S[j, i]`` over the items j the user
interacted with, so it splits exactly into one reason per j: "you interacted with j, and
people who interacted with j also interacted with i". The path shown goes through the
co-user with the heaviest interaction, a real ``(:User)-[:INTERACTED]->(:Item)`` hop.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Reason, Recommendation, SimilarItems, TopReasons
from kgrec.recommenders.config import ModelConfig
from kgrec.recommenders.models.scored import HistoryScored, ScoredRecommender
from kgrec.recommenders.models.sparse_rows import (
    RowEntries,
    csr_restore,
    csr_state,
    dense_column,
    interaction_weights,
    item_users,
    ranked_shares,
    row_positions,
    weight_vector,
    weighted_row_sum,
)
from kgrec.recommenders.ranking import top_k
from kgrec.recommenders.saved_arrays import Dim

BLOCK = 2048


@dataclass(frozen=True)
class ItemToItemConfig(ModelConfig):
    """Options every item-to-item model has: how play counts enter (``binary``, ``log``, ``raw``)."""

    interaction_weighting: Literal["binary", "log", "raw"] = "binary"


class ItemToItem(ScoredRecommender, HistoryScored, SimilarItems):
    """Subclasses build ``self._sim`` (items × items, CSR) in ``_fit``; the rest is shared."""

    _sim: sp.csr_matrix
    config: ItemToItemConfig

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self._weights = interaction_weights(snapshot, self.config.interaction_weighting)
        self._item_users = item_users(snapshot)

    def _scores(self, u: int) -> np.ndarray | None:
        w = self._weights
        a, b = w.indptr[u], w.indptr[u + 1]
        if a == b:
            return None
        return weighted_row_sum(self._sim, w.indices[a:b], w.data[a:b])

    def _history_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The same ``weights @ S`` as ``_scores``, for a history newer than the fit."""
        vals = weight_vector(weights, self.config.interaction_weighting)
        return weighted_row_sum(self._sim, items, vals)

    def similar_items(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """The item's row of the fitted item×item matrix (its kept neighbours), strongest first."""
        snap = self._snap()
        j = snap.items.get(item_id)
        if j is None or k <= 0:
            return []
        row = np.zeros(len(snap.items))
        a, b = self._sim.indptr[j], self._sim.indptr[j + 1]
        row[self._sim.indices[a:b]] = self._sim.data[a:b]
        row[j] = 0.0
        return [Recommendation(snap.items.ids[i], float(row[i]), self.name) for i in top_k(row, k)]

    @abstractmethod
    def _reason_text(self, u: int, j: int, i: int, co_users: int, sim: float) -> str: ...

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _user_rows(self, u: int) -> tuple[np.ndarray, np.ndarray, RowEntries, RowEntries]:
        """The user's items and weights, their similarity rows and their audiences, kept for
        the last user: a served list explains k items of one user in a row."""
        return self._per_user(u, lambda: self._rows_of(u))

    def _rows_of(self, u: int) -> tuple[np.ndarray, np.ndarray, RowEntries, RowEntries]:
        w = self._weights
        a, b = w.indptr[u], w.indptr[u + 1]
        items = w.indices[a:b]
        iu = self._item_users  # CSC: an item's column is a row of the transpose
        pos, owner = row_positions(iu.indptr, items)
        audiences = RowEntries(owner, iu.indices[pos], iu.data[pos])
        return items, w.data[a:b], RowEntries.of(self._sim, items), audiences

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        """One share ``w(u, j) * S[j, i]`` per own item j that some other user links to i,
        ranked as numbers; only the ``limit`` best become Reasons (with their witness)."""
        items, vals, sim_rows, audiences = self._user_rows(u)
        col = sim_rows.column(i, len(items))
        iu = self._item_users
        into_i = dense_column(iu, i)  # interaction weight with i, by user
        into_i[u] = 0.0
        # co-users of each own item j (other than u) who also chose i
        n_both = np.bincount(audiences.owner, weights=into_i[audiences.cols] != 0, minlength=len(items))
        linked = np.flatnonzero((col != 0) & (n_both > 0))
        n_both = n_both[linked]
        shares = vals[linked] * col[linked]
        shown, rest = ranked_shares(shares, limit)
        reasons = []
        for k in shown.tolist():
            j = int(items[linked[k]])
            users_j = iu.indices[iu.indptr[j] : iu.indptr[j + 1]]
            v = int(users_j[np.argmax(into_i[users_j])])
            text = self._reason_text(u, j, i, int(n_both[k]), float(col[linked[k]]))
            reasons.append(self._paths.co_interaction(u, j, v, i, float(shares[k]), text))
        omitted = shares[rest]
        return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"sim": ("items", "items")}

    def _state(self) -> dict[str, np.ndarray]:
        return csr_state("sim", self._sim)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._sim = csr_restore("sim", arrays)


def blockwise_item_products(
    x: sp.csr_matrix, transform: Callable[[np.ndarray, sp.csr_matrix], sp.csr_matrix], block: int = BLOCK
) -> sp.csr_matrix:
    """``transform(rows, X[:, rows].T @ X)`` for blocks of item columns, stacked: the item×item
    co-occurrence is never held whole, and each block is sparsified as it is made."""
    xc = sp.csc_matrix(x)
    n = x.shape[1]
    parts = []
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        prod = sp.csr_matrix(xc[:, rows].T @ x)
        parts.append(transform(rows, prod))
    if not parts:
        return sp.csr_matrix((n, n))
    out = sp.csr_matrix(sp.vstack(parts, format="csr"))
    out.sort_indices()
    return out


def drop_diagonal(rows: np.ndarray, m: sp.csr_matrix) -> sp.csr_matrix:
    """Remove each item's similarity with itself (row r of the block is item rows[r])."""
    m = sp.coo_matrix(m)
    keep = m.col != rows[m.row]
    return sp.csr_matrix((m.data[keep], (m.row[keep], m.col[keep])), shape=m.shape)
