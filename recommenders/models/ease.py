"""EASE (Steck, WWW 2019): a closed-form item×item linear model, with exact explanations.

EASE learns the item×item weights B that best reconstruct the user×item matrix X from the
user's other items, ``min ‖X − XB‖² + λ‖B‖²`` with ``diag(B) = 0``. The solution is closed
form: with ``P = (XᵀX + λI)⁻¹``, ``B[j, i] = −P[j, i] / P[i, i]`` and ``B[i, i] = 0``.

The score of item i for user u is ``x_u · B[:, i] = Σ_j x_uj · B[j, i]`` over the user's
items j (``x_uj`` = 1 with the default binary weighting), so it splits exactly into one
reason per own item: "you interacted with j" with share ``x_uj · B[j, i]`` (negative when
having j makes i less likely), replayed by ``(u)-[:INTERACTED]->(j)``.

Memory: the Gram matrix is dense (items × items), so EASE works on a capped set of items —
those with at least ``min_users`` users, and of those at most the ``n`` with the largest
audience (ties by index) such that the float64 Gram inverted in place plus the float32 B
kept for serving, ``12 · n²`` bytes, fit ``memory_mb`` (1024 MB → 9,459 items). Other items
score 0 and are never recommended by EASE (the fallback chain fills with them); the user's
items outside the set add nothing. Fit time is one n×n Cholesky inverse (LAPACK).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason, TopReasons, Tunable
from kgrec.recommenders.config import AtLeastOne, ModelConfig, NonNegative, Positive
from kgrec.recommenders.models.cosession import has_timestamps, local_gram
from kgrec.recommenders.models.scored import HistoryScored, ScoredRecommender
from kgrec.recommenders.models.sparse_rows import interaction_weights, ranked_shares, weight_vector
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

if TYPE_CHECKING:
    import optuna

#: Bytes per kept item pair during fit: the float64 Gram (inverted in place) and the float32 B.
BYTES_PER_PAIR = 12


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """``lam``: the L2 penalty λ (larger: smoother, more popular items); ``min_users``: items
    with fewer users are left out; ``memory_mb``: budget of the dense matrices (sets the item
    cap, see the module docstring); ``interaction_weighting``: ``binary``, ``log`` or ``raw``
    entries of X and of the user row. λ = 150 has the best summed validation NDCG@10 over
    the two shared datasets (λ 50/100/150/250/500/1000 tried: Last.fm 2K peaks at 100, 0.175,
    ml-latest-small at 150, 0.221; 150 is within 1 % of both); ``kgrec train`` tunes λ on the
    user's own data (``search_space``). ``local_weight`` γ adds γ times the time-local
    co-occurrence of ``recommenders.cosession`` (kernel width ``local_window`` positions of
    a user's timeline) to XᵀX; 0 (the default) is plain EASE, and the tuner tries γ > 0 only
    on graphs with timestamps."""

    lam: Annotated[float, Positive] = 150.0
    min_users: Annotated[int, AtLeastOne] = 2
    memory_mb: Annotated[float, Positive] = 1024.0
    interaction_weighting: Literal["binary", "log", "raw"] = "binary"
    local_weight: Annotated[float, NonNegative] = 0.0
    local_window: Annotated[float, Positive] = 5.0


def item_cap(memory_mb: float) -> int:
    """The most items whose dense fit matrices fit ``memory_mb`` (``12 · n²`` bytes)."""
    return math.isqrt(int(memory_mb * 2**20) // BYTES_PER_PAIR)


def kept_items(audience: np.ndarray, min_users: int, cap: int) -> np.ndarray:
    """Items EASE models: at least ``min_users`` users, the ``cap`` largest audiences (ties
    by index), in index order."""
    eligible = np.flatnonzero(audience >= max(min_users, 1))
    if len(eligible) > cap:
        order = np.lexsort((eligible, -audience[eligible]))
        eligible = np.sort(eligible[order[:cap]])
    return eligible


def ease_weights(x: sp.csr_matrix, lam: float, extra: sp.spmatrix | None = None) -> np.ndarray:
    """B = I − P·diag(1/diag P) with zero diagonal, P = (XᵀX + E + λI)⁻¹ (E = ``extra``, a
    sparse positive semi-definite addition, or none), via a Cholesky inverse done in place
    (LAPACK ``potrf``/``potri`` on the Fortran-ordered view of the symmetric Gram), so the
    fit holds one float64 n×n matrix."""
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    if extra is not None:
        e = sp.coo_matrix(extra)
        gram[e.row, e.col] += e.data  # canonical (summed) entries: each index pair once
    a = gram.T  # the same symmetric matrix, Fortran-contiguous: LAPACK works on it in place
    a[np.diag_indices_from(a)] += lam
    chol, info = scipy.linalg.lapack.dpotrf(a, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite (LAPACK info {info}); raise lam")
    p, info = scipy.linalg.lapack.dpotri(chol, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE Gram inverse failed (LAPACK info {info})")
    _fill_lower(p)
    p /= -np.diag(p).copy()  # column i divided by -P[i, i]
    p[np.diag_indices_from(p)] = 0.0
    return p


def _fill_lower(p: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one in place, a block of rows at a time."""
    n = p.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        p[s:e, :s] = p[:s, s:e].T
        d = p[s:e, s:e]
        d[:] = np.triu(d) + np.triu(d, 1).T


@register("ease", fit_cost=FitCost(nnz=2.0, dense=47.0, fixed=0.5), default_rank=1, hybrid_rank=0)
class EASE(ScoredRecommender, HistoryScored, Tunable):
    Config = EASEConfig
    config: EASEConfig

    _b: np.ndarray  # kept × kept, float32
    _keep: np.ndarray  # snapshot item index of each kept row/column

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """λ on a log scale (the Gram's diagonal is the item audience, so the useful range
        grows with the data); the item cap and weighting stay at their defaults. On graphs
        with timestamps, whether to add time-local co-occurrence, its weight and window."""
        out: dict[str, Any] = {"lam": trial.suggest_float("lam", 5.0, 5000.0, log=True)}
        if has_timestamps(snapshot) and trial.suggest_categorical("local", [False, True]):
            out["local_weight"] = trial.suggest_float("local_weight", 0.25, 16.0, log=True)
            out["local_window"] = trial.suggest_float("local_window", 1.0, 20.0, log=True)
        return out

    @classmethod
    def search_starts(cls, snapshot: GraphSnapshot) -> list[dict[str, Any]]:
        """Trials the tuner runs right after the defaults: on graphs with timestamps, the
        co-session Gram at the weight and window that did best on ml-latest-small's cut."""
        if not has_timestamps(snapshot):
            return []
        return [{"lam": 150.0, "local": True, "local_weight": 4.0, "local_window": 5.0}]

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        if cfg.lam <= 0:
            raise ValueError("lam must be positive")
        if cfg.memory_mb <= 0:
            raise ValueError("memory_mb must be positive")
        if cfg.local_weight < 0 or cfg.local_window <= 0:
            raise ValueError("local_weight must be >= 0 and local_window positive")
        self._weights = interaction_weights(snapshot, cfg.interaction_weighting)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr)
        keep = kept_items(audience, cfg.min_users, item_cap(cfg.memory_mb))
        xs = sp.csr_matrix(self._weights[:, keep], dtype=np.float64)
        self._set_keep(keep)
        extra = None
        if cfg.local_weight > 0 and has_timestamps(snapshot):
            extra = cfg.local_weight * local_gram(snapshot, self._position, cfg.local_window)
        self._b = (np.ascontiguousarray(ease_weights(xs, cfg.lam, extra), dtype=np.float32) if len(keep)
                   else np.zeros((0, 0), np.float32))

    def _set_keep(self, keep: np.ndarray) -> None:
        self._keep = np.asarray(keep, dtype=np.int64)
        self._position = np.full(len(self._snap().items), -1, dtype=np.int64)
        self._position[self._keep] = np.arange(len(self._keep))

    @property
    def gram_items(self) -> int:
        """How many items the model covers (the side of its Gram matrix)."""
        return len(self._keep)

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"b": (None, None), "keep": (None,)}

    def _state(self) -> dict[str, np.ndarray]:
        return {"b": self._b, "keep": self._keep}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._b = arrays["b"]
        self._set_keep(arrays["keep"])

    # -- scoring ------------------------------------------------------------------------------
    def _row(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept rows of B a history touches and the user-row value of each."""
        pos = self._position[items]
        mine = pos >= 0
        return pos[mine], values[mine]

    def _score_row(self, pos: np.ndarray, values: np.ndarray) -> np.ndarray | None:
        if len(pos) == 0:
            return None
        out = np.zeros(len(self._position))
        out[self._keep] = values @ self._b[pos].astype(np.float64)
        return out

    def _user(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = self._weights
        items = w.indices[w.indptr[u] : w.indptr[u + 1]]
        pos = self._position[items]
        mine = pos >= 0
        return items[mine], pos[mine], w.data[w.indptr[u] : w.indptr[u + 1]][mine]

    def _scores(self, u: int) -> np.ndarray | None:
        _, pos, values = self._user(u)
        return self._score_row(pos, values)

    def _history_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """``x · B`` for a history newer than the fit; a negative weight (a dislike) enters
        the user row with its sign, so that item's weights are subtracted."""
        values = np.sign(weights) * weight_vector(np.abs(weights), self.config.interaction_weighting)
        return self._score_row(*self._row(items, values))

    # -- explanations -------------------------------------------------------------------------
    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        """One share ``x_uj · B[j, i]`` per own item j in the model; only the ``limit``
        largest become Reasons, the rest are counted and summed."""
        items, pos, values = self._user(u)
        col = self._position[i]
        shares = values * self._b[pos, col].astype(np.float64) if col >= 0 else np.zeros(0)
        nonzero = np.flatnonzero(shares != 0)
        shares, items = shares[nonzero], items[nonzero]
        shown, rest = ranked_shares(shares, limit)
        snap = self._snap()
        reasons = []
        for k in shown.tolist():
            j, share = int(items[k]), float(shares[k])
            effect = "more" if share > 0 else "less"
            text = (f"You interacted with {snap.title(j)}; people who did are {effect} likely to choose "
                    f"{snap.title(i)} (EASE weight {share:+.4f})")
            reasons.append(self._paths.own_item(u, j, share, text))
        omitted = shares[rest]
        return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))
