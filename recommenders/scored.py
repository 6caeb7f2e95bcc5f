"""The shared machinery of recommenders that score every item for a user.

A ``ScoredRecommender`` subclass says how to fit (``_fit``), how to score one user over all
items (``_scores``), how to explain one (user, item) pair (``_explain``) and which arrays
hold its fitted state (``_state`` / ``_restore``). This class does the rest the same way for
all of them: id lookups, filtering seen and excluded items, a deterministic top-k with
``numpy.argpartition``, and the save/load format.

Save/load contract (every recommender, including ones added later such as ``kge``):
``save(dir)`` writes ``model.json`` — ``{"format", "name", "config", "fingerprint"}`` — and
``arrays.npz`` (plain numeric arrays, read back with ``allow_pickle=False``);
``load(dir, snapshot)`` refuses a snapshot whose fingerprint differs from the one the model
was fitted on, rebuilds the ``Config`` from JSON and restores the arrays without refitting.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from graph.snapshot import GraphSnapshot
from recommenders.base import (
    FoldsInHistory,
    Reason,
    Recommendation,
    Recommender,
    ScoresAllItems,
    TopReasons,
    top_reasons,
)
from recommenders.integrity import Dim, check_arrays
from recommenders.paths import PathBuilder

MODEL_FORMAT = 1


class ScoredRecommender(Recommender, ScoresAllItems):
    """Recommend by scoring all items of one user; see the module docstring."""

    Config: ClassVar[type]
    #: The arrays ``_state`` saves, by name, with their dimensions in snapshot counts ("users",
    #: "items", "tags") or None for any length; a sparse matrix is one name (``csr_state``).
    #: ``load`` refuses arrays that do not match (``recommenders.integrity.check_arrays``).
    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {}
    #: Arrays that may hold NaN or infinities; every other float array must be finite.
    NAN_OK: ClassVar[frozenset[str]] = frozenset()
    #: Only items with a score above zero are recommended (no evidence, no item): the
    #: fallback chain fills the rest. Factor models set this to False.
    positive_only: ClassVar[bool] = True

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        base = config if config is not None else self.Config()
        self.config = replace(base, **overrides) if overrides else base
        self.snapshot: GraphSnapshot | None = None

    # -- what subclasses provide --------------------------------------------------------------
    def _prepare(self, snapshot: GraphSnapshot) -> None:
        """Derive cheap views of the snapshot (both after fit and after load)."""

    @abstractmethod
    def _fit(self, snapshot: GraphSnapshot) -> None: ...

    @abstractmethod
    def _scores(self, u: int) -> np.ndarray | None:
        """Scores of every item for user index ``u`` (float64), or None when cold."""

    @abstractmethod
    def _explain(self, u: int, i: int, score: float) -> list[Reason]: ...

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        """The ``limit`` strongest reasons and the rest's count and sum. Recommenders with many
        paths override this to rank cheap contributions first and build only ``limit`` Reasons."""
        return top_reasons(self._explain(u, i, score), limit)

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None: ...

    # -- the protocol -----------------------------------------------------------------------
    def fit(self, snapshot: GraphSnapshot) -> ScoredRecommender:
        self.snapshot = snapshot
        self._last_scores = None
        self._paths = PathBuilder(snapshot)
        self._prepare(snapshot)
        self._fit(snapshot)
        return self

    def _snap(self) -> GraphSnapshot:
        if self.snapshot is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(snapshot) or load(dir, snapshot) first")
        return self.snapshot

    def _user_scores(self, u: int) -> np.ndarray | None:
        """``_scores(u)`` as a read-only view, kept for the last user: serving scores a user and
        then explains the list it served (the hybrid scores every component first), so the
        second pass reuses the first's scores instead of scoring again."""
        cached = self.__dict__.get("_last_scores")
        if cached is not None and cached[0] == u:
            return cached[1]
        scores = self._scores(u)
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64).view()
            scores.setflags(write=False)
        self._last_scores = (u, scores)
        return scores

    def score_user(self, user_id: str) -> np.ndarray | None:
        """All item scores for a user (None when unknown or cold), read-only; evaluation uses this."""
        u = self._snap().users.get(user_id)
        return None if u is None else self._user_scores(u)

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None or k <= 0:
            return []
        scores = self._user_scores(u)
        if scores is None:
            return []
        scores = np.array(scores, dtype=np.float64, copy=True)
        scores[snap.user_items(u)] = -np.inf
        if exclude:
            idx = [j for j in (snap.items.get(x) for x in exclude) if j is not None]
            scores[idx] = -np.inf
        top = top_k(scores, k, positive_only=self.positive_only)
        ids = snap.items.ids
        return [Recommendation(ids[j], float(scores[j]), self.name) for j in top]

    def explain(self, user_id: str, item_id: str, limit: int | None = None) -> list[Reason]:
        """All reasons, strongest first (their contributions sum to the score for additive
        recommenders); with ``limit``, only the strongest ``limit`` of them."""
        if limit is not None:
            return list(self.explain_top(user_id, item_id, limit).reasons)
        snap = self._snap()
        u, i = snap.users.get(user_id), snap.items.get(item_id)
        if u is None or i is None:
            return []
        scores = self._user_scores(u)
        if scores is None or not np.isfinite(scores[i]) or (self.positive_only and scores[i] <= 0):
            return []
        reasons = self._explain(u, i, float(scores[i]))
        return sorted(reasons, key=lambda r: -r.contribution)

    def explain_top(self, user_id: str, item_id: str, limit: int | None = None) -> TopReasons:
        return self.explain_many(user_id, [item_id], limit)[0]

    def explain_many(self, user_id: str, item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        """``explain_top`` for several items of one user, scoring the user once."""
        snap = self._snap()
        u = snap.users.get(user_id)
        scores = self._user_scores(u) if u is not None else None
        out = []
        for item_id in item_ids:
            i = snap.items.get(item_id)
            if (scores is None or i is None or not np.isfinite(scores[i])
                    or (self.positive_only and scores[i] <= 0)):
                out.append(TopReasons())
            else:
                out.append(self._explain_top(u, i, float(scores[i]), limit))
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        snap = self._snap()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": MODEL_FORMAT, "name": self.name, "config": asdict(self.config),
                "fingerprint": snap.fingerprint}
        np.savez_compressed(d / "arrays.npz", **self._state())
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> ScoredRecommender:
        d = Path(directory)
        meta = read_model_meta(d, cls.name, snapshot)
        model = cls(config_from_json(cls.Config, meta["config"]))
        model.snapshot = snapshot
        model._last_scores = None
        model._paths = PathBuilder(snapshot)
        model._prepare(snapshot)
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        check_arrays(arrays, cls.ARRAYS, snapshot, d / "arrays.npz", cls.NAN_OK)
        model._restore(arrays)
        return model


class HistoryScored(FoldsInHistory):
    """Mixin for a ``ScoredRecommender`` that can score a history newer than its fit (feedback
    posted since the bundle): it provides ``_history_scores`` from item indices and weights."""

    snapshot: GraphSnapshot | None

    @abstractmethod
    def _history_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """Scores of every item for a history given as item indices and raw weights (a
        negative weight is a dislike), without refitting; None when there is nothing to say."""

    def score_history(self, history: Mapping[str, float]) -> np.ndarray | None:
        """Items unknown to the snapshot are ignored; None when none is known."""
        snap = self.snapshot
        if snap is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        known = sorted((j, float(w)) for j, w in ((snap.items.get(x), w) for x, w in history.items()) if j is not None)
        if not known:
            return None
        items = np.fromiter((j for j, _ in known), dtype=np.int64, count=len(known))
        weights = np.fromiter((w for _, w in known), dtype=np.float64, count=len(known))
        scores = self._history_scores(items, weights)
        return None if scores is None else np.asarray(scores, dtype=np.float64)


def read_model_meta(d: Path, name: str, snapshot: GraphSnapshot) -> dict[str, Any]:
    """Read ``model.json`` and check it belongs to this recommender and this snapshot."""
    path = d / "model.json"
    if not path.is_file():
        raise FileNotFoundError(f"{d}: no model.json; not a saved model")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{d}: model format {meta.get('format')} is not {MODEL_FORMAT}")
    if meta.get("name") != name:
        raise ValueError(f"{d}: holds model {meta.get('name')!r}, not {name!r}")
    if meta.get("fingerprint") != snapshot.fingerprint:
        raise ValueError(
            f"{d}: fitted on snapshot {meta.get('fingerprint')}, but the snapshot given is {snapshot.fingerprint}"
        )
    return meta


def config_from_json(config_cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen Config from JSON, refusing unknown keys (tuples come back as lists)."""
    known = {f.name: f for f in fields(config_cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__qualname__} options: {sorted(unknown)}")
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def top_k(scores: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """Indices of the k best scores, best first; ties broken by index so results are stable."""
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


# -- sparse helpers shared by the neighbourhood recommenders --------------------------------------
def csr_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for ``arrays.npz``."""
    m = sp.csr_matrix(m)
    return {f"{prefix}.data": m.data, f"{prefix}.indices": m.indices, f"{prefix}.indptr": m.indptr,
            f"{prefix}.shape": np.asarray(m.shape, dtype=np.int64)}


def csr_restore(prefix: str, a: dict[str, np.ndarray]) -> sp.csr_matrix:
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


def interaction_weights(snapshot: GraphSnapshot, scheme: str) -> sp.csr_matrix:
    """The user×item matrix under a weighting: ``binary``, ``log`` (log1p of weight) or ``raw``."""
    m = sp.csr_matrix(snapshot.interactions, dtype=np.float64, copy=True)
    if scheme == "binary":
        m.data[:] = 1.0
    elif scheme == "log":
        m.data = np.log1p(m.data)
    elif scheme != "raw":
        raise ValueError(f"unknown weighting {scheme!r}; expected binary, log or raw")
    return m


def best_witness(snapshot: GraphSnapshot, item_users: sp.csc_matrix, j: int, i: int, exclude: int) -> int | None:
    """A user (other than ``exclude``) who interacted with both j and i, the heaviest first."""
    a = item_users.indices[item_users.indptr[j] : item_users.indptr[j + 1]]
    b = item_users.indices[item_users.indptr[i] : item_users.indptr[i + 1]]
    both = np.intersect1d(a, b, assume_unique=True)
    both = both[both != exclude]
    if len(both) == 0:
        return None
    w = np.asarray(snapshot.interactions[both, i].todense()).ravel()
    return int(both[np.lexsort((both, -w))[0]])


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
