"""Sparse-matrix arithmetic the neighbourhood and graph recommenders share.

Saving a CSR matrix as plain arrays, row normalisation and top-k per row, interaction weighting
schemes (``binary``, ``log``, ``raw``), a tuner search space for neighbourhood sizes, and fast
reads of a few rows' entries (``RowEntries``) for explanations.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from kgrec.graph.array_files import index_dtype
from kgrec.graph.snapshot import GraphSnapshot


def csr_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays to save: canonical (sorted columns, duplicates summed, on a
    copy when it is not already) with one index dtype, so that ``csr_restore`` builds it over
    the mapped files without converting, and no later operation sorts them in place."""
    m = sp.csr_matrix(m)
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    idx = index_dtype(m.nnz, *m.shape)
    return {f"{prefix}.data": m.data, f"{prefix}.indices": m.indices.astype(idx, copy=False),
            f"{prefix}.indptr": m.indptr.astype(idx, copy=False),
            f"{prefix}.shape": np.asarray(m.shape, dtype=np.int64)}


def csr_restore(prefix: str, a: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """The matrix ``csr_state`` saved, over the (mapped, read-only) arrays themselves."""
    shape = tuple(int(x) for x in a[f"{prefix}.shape"])
    return sp.csr_matrix((a[f"{prefix}.data"], a[f"{prefix}.indices"], a[f"{prefix}.indptr"]), shape=shape)


def row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Each row scaled to sum 1 (empty rows stay empty): a transition matrix."""
    m = sp.csr_matrix(m, dtype=np.float64)
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    out = sp.csr_matrix(sp.diags(inv) @ m)
    out.sort_indices()
    return out


def keep_top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties by column index); zeros are dropped."""
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    m.sort_indices()
    if k <= 0:
        return m
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= k:
        return m
    keep = np.ones(m.nnz, dtype=bool)
    for r in np.flatnonzero(counts > k):
        a, b = m.indptr[r], m.indptr[r + 1]
        row = m.data[a:b]
        order = np.lexsort((np.arange(b - a), -row))
        drop = order[k:]
        keep[a + drop] = False
    rows = np.repeat(np.arange(m.shape[0]), counts)[keep]
    out = sp.csr_matrix((m.data[keep], (rows, m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


def graded(snapshot: GraphSnapshot) -> bool:
    """Whether interaction weights differ (play counts, ratings): only then can a search
    space gain anything from choosing between binary and log weighting."""
    data = snapshot.interactions.data
    return bool(len(data) and data.min() != data.max())


def neighbourhood_space(trial: Any, snapshot: GraphSnapshot, neighbours: tuple[int, int]) -> dict[str, Any]:
    """The search space item- and user-based CF share (an ``optuna.Trial``): cosine or BM25
    (with its length normalisation ``b``), shrinkage, neighbours in ``neighbours``, and log
    weighting where weights differ."""
    out: dict[str, Any] = {
        "weighting": trial.suggest_categorical("weighting", ["cosine", "bm25"]),
        "shrink": trial.suggest_float("shrink", 0.0, 200.0),
        "neighbours": trial.suggest_int("neighbours", *neighbours, log=True),
    }
    if out["weighting"] == "bm25":
        out["bm25_b"] = trial.suggest_float("bm25_b", 0.0, 1.0)
    if graded(snapshot):
        out["interaction_weighting"] = trial.suggest_categorical("interaction_weighting", ["binary", "log"])
    return out


T = TypeVar("T")
_VIEWS: dict[int, dict[tuple[str, ...], Any]] = {}
_VIEWS_LOCK = threading.RLock()


def snapshot_view(snapshot: GraphSnapshot, key: tuple[str, ...], build: Callable[[], T]) -> T:
    """``build()`` once per snapshot and key, shared by every model over that snapshot (a
    bundle's models, and a hybrid's components, all derive the same views): one copy per
    process instead of one per model. Views must be treated as read-only."""
    with _VIEWS_LOCK:
        views = _VIEWS.get(id(snapshot))
        if views is None:
            views = _VIEWS[id(snapshot)] = {}
            weakref.finalize(snapshot, _VIEWS.pop, id(snapshot), None)
        if key not in views:
            views[key] = build()
        return views[key]


def _read_only(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with its arrays marked read-only (views over another matrix's index arrays are
    marked, not those arrays themselves)."""
    for part in (m.data, m.indices, m.indptr):
        part.setflags(write=False)
    return m


def interaction_weights(snapshot: GraphSnapshot, scheme: str) -> sp.csr_matrix:
    """The user×item matrix under a weighting: ``binary``, ``log`` (log1p of weight) or ``raw``
    (float64 values over the snapshot's own index arrays). Shared per snapshot and read-only:
    copy it before changing it."""
    if scheme not in ("binary", "log", "raw"):
        raise ValueError(f"unknown weighting {scheme!r}; expected binary, log or raw")

    def build() -> sp.csr_matrix:
        x = snapshot.interactions
        data = x.data.astype(np.float64)
        if scheme == "binary":
            data[:] = 1.0
        elif scheme == "log":
            np.log1p(data, out=data)
        return _read_only(sp.csr_matrix((data, x.indices.view(), x.indptr.view()), shape=x.shape))

    return snapshot_view(snapshot, ("interaction_weights", scheme), build)


def item_users(snapshot: GraphSnapshot) -> sp.csc_matrix:
    """The interactions as CSC (an item's users are a slice), sorted; shared and read-only."""

    def build() -> sp.csc_matrix:
        m = sp.csc_matrix(snapshot.interactions)
        m.sort_indices()
        for part in (m.data, m.indices, m.indptr):
            part.setflags(write=False)
        return m

    return snapshot_view(snapshot, ("item_users",), build)


def weight_vector(weights: np.ndarray, scheme: str) -> np.ndarray:
    """One user's raw interaction weights under ``interaction_weights``' scheme; the sign is
    kept, so a negative weight (a dislike folded into a history) stays negative evidence."""
    w = np.asarray(weights, dtype=np.float64)
    if scheme == "binary":
        return np.sign(w)
    if scheme == "log":
        return np.sign(w) * np.log1p(np.abs(w))
    if scheme != "raw":
        raise ValueError(f"unknown weighting {scheme!r}; expected binary, log or raw")
    return w.copy()


def weighted_row_sum(m: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights @ m[rows]`` as a dense vector, by gathering the rows' slices (much faster
    than scipy's sparse row indexing for one user's few dozen rows)."""
    starts, ends = m.indptr[rows], m.indptr[rows + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(m.shape[1])
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    pos = np.arange(total) + offsets
    vals = m.data[pos] * np.repeat(weights, lengths)
    return np.bincount(m.indices[pos], weights=vals, minlength=m.shape[1])


def row_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the entries of ``rows`` of a compressed (CSR/CSC) matrix lie in its data, and
    which of ``rows`` (by position) each belongs to: a vectorised gather of several rows."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), owner
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(total) + offsets, owner


@dataclass(frozen=True)
class RowEntries:
    """The entries of some rows of a CSR matrix, flattened once so that any column of those
    rows is a cheap comparison: explaining k items for one user reads the same rows k times."""

    owner: np.ndarray  #: which row, as a position in the rows asked for
    cols: np.ndarray
    vals: np.ndarray

    @classmethod
    def of(cls, m: sp.csr_matrix, rows: np.ndarray) -> RowEntries:
        pos, owner = row_positions(m.indptr, rows)
        return cls(owner, m.indices[pos], m.data[pos])

    def column(self, col: int, n: int) -> np.ndarray:
        """``m[rows, col]`` as a dense vector of length ``n`` (a row holds a column at most once)."""
        out = np.zeros(n)
        hit = self.cols == col
        out[self.owner[hit]] = self.vals[hit]
        return out


def ranked_shares(shares: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``limit`` largest shares (all when None), largest first and stable
    on ties, and the positions of the rest: which paths to build as Reasons and which to sum."""
    order = np.argsort(-shares, kind="stable")
    n = len(order) if limit is None else max(0, min(limit, len(order)))
    return order[:n], order[n:]


def row_values(m: sp.csr_matrix, rows: np.ndarray, col: int) -> np.ndarray:
    """``m[rows, col]`` for a CSR matrix with sorted indices, without scipy's fancy indexing:
    one binary search per row, run for all rows at once (a few numpy steps, not a loop over rows)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros(len(rows))
    if m.nnz == 0 or len(rows) == 0:
        return out
    lo = m.indptr[rows].astype(np.int64)
    hi = m.indptr[rows + 1].astype(np.int64)
    if len(rows) <= 4:  # a few rows: numpy's own search per row beats the vectorised steps
        for k, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
            at = a + int(np.searchsorted(m.indices[a:b], col))
            if at < b and m.indices[at] == col:
                out[k] = m.data[at]
        return out
    end, last = hi.copy(), m.nnz - 1
    active = lo < hi
    while active.any():
        mid = (lo + hi) // 2
        right = active & (m.indices[np.minimum(mid, last)] < col)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
        active = lo < hi
    found = (lo < end) & (m.indices[np.minimum(lo, last)] == col)
    out[found] = m.data[lo[found]]
    return out


def dense_column(m: sp.csc_matrix, j: int) -> np.ndarray:
    """Column j of a CSC matrix as a dense vector."""
    out = np.zeros(m.shape[0])
    a, b = m.indptr[j], m.indptr[j + 1]
    out[m.indices[a:b]] = m.data[a:b]
    return out
