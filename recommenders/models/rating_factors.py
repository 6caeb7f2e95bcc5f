"""A fitted SVD++-class rating model as plain arrays: predictions and their exact parts.

    r̂(u, i) = μ + b_u + b_i + ⟨p_u + Σ_{j ∈ N(u)} c_uj y_j + Σ_{v ∈ T(u)} d_uv t_v, q_i⟩

clipped to the ratings' scale [lo, hi]. ``implicit`` holds c_uj (the items u rated, each row
scaled to |N(u)|^-½), ``trust`` d_uv (the users u follows, |T(u)|^-½); ``implicit_factors`` (y)
and ``trust_factors`` (t) have no rows when the model does not use them. The user's vector
p_u + Σ c y + Σ d t is computed once (``user_vectors``), so a prediction is a gather and a dot
product, and ``parts`` splits one into μ, b_u, b_i, the own taste term ⟨p_u, q_i⟩ and one share
per co-rated item and per trusted user, which add up to the unclipped prediction exactly.

An unknown user or item (index −1) gets the baseline: μ plus the bias(es) that are known.
Only numpy and scipy: serving never imports the library that fitted the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from kgrec.recommenders.models.sparse_rows import csr_restore, csr_state
from kgrec.recommenders.saved_arrays import Dim

#: The saved arrays and their dimensions (``recommenders.saved_arrays.check_arrays``).
ARRAYS: dict[str, tuple[Dim, ...]] = {
    "scale": (None,), "user_bias": ("users",), "item_bias": ("items",), "user_factors": ("users", None),
    "item_factors": ("items", None), "implicit_factors": (None, None), "trust_factors": (None, None),
    "implicit": ("users", "items"), "trust": ("users", "users"),
}


@dataclass(frozen=True)
class Parts:
    """One prediction's additive parts (before clipping); ``co_rated``/``trusted`` are aligned
    with ``co_rated_items``/``trusted_users`` (indices)."""

    mu: float
    user_bias: float
    item_bias: float
    own: float
    co_rated_items: np.ndarray
    co_rated: np.ndarray
    trusted_users: np.ndarray
    trusted: np.ndarray

    @property
    def total(self) -> float:
        return (self.mu + self.user_bias + self.item_bias + self.own + float(self.co_rated.sum())
                + float(self.trusted.sum()))


@dataclass
class RatingFactors:
    mu: float
    lo: float
    hi: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    implicit_factors: np.ndarray
    trust_factors: np.ndarray
    implicit: sp.csr_matrix
    trust: sp.csr_matrix
    user_vectors: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        x = np.array(self.user_factors, dtype=np.float64, copy=True)
        if self.implicit_factors.shape[0]:
            x += self.implicit @ self.implicit_factors
        if self.trust_factors.shape[0]:
            x += self.trust @ self.trust_factors
        self.user_vectors = x

    @property
    def n_users(self) -> int:
        return int(self.user_bias.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_bias.shape[0])

    def raw(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Unclipped predictions; an index outside the model (−1) is unknown: baseline parts only."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        ku = (users >= 0) & (users < self.n_users)
        ki = (items >= 0) & (items < self.n_items)
        out = np.full(users.shape, self.mu, dtype=np.float64)
        out[ku] += self.user_bias[users[ku]]
        out[ki] += self.item_bias[items[ki]]
        both = ku & ki
        if both.any():
            out[both] += np.einsum("nr,nr->n", self.user_vectors[users[both]], self.item_factors[items[both]])
        return out

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predictions clipped to the scale [lo, hi]."""
        return np.clip(self.raw(users, items), self.lo, self.hi)

    def user_items_scores(self, u: int) -> np.ndarray:
        """Unclipped predictions of every item for a known user (the hybrid's feature)."""
        return self.mu + self.user_bias[u] + self.item_bias + self.item_factors @ self.user_vectors[u]

    def parts(self, u: int, i: int) -> Parts:
        """The exact additive parts of the prediction for a known user ``u`` and item ``i``."""
        q = self.item_factors[i]
        js, co = _shares(self.implicit, self.implicit_factors, u, q)
        vs, tr = _shares(self.trust, self.trust_factors, u, q)
        return Parts(self.mu, float(self.user_bias[u]), float(self.item_bias[i]), float(self.user_factors[u] @ q),
                     js, co, vs, tr)

    def state(self) -> dict[str, np.ndarray]:
        return {"scale": np.array([self.mu, self.lo, self.hi]), "user_bias": self.user_bias,
                "item_bias": self.item_bias, "user_factors": self.user_factors, "item_factors": self.item_factors,
                "implicit_factors": self.implicit_factors, "trust_factors": self.trust_factors,
                **csr_state("implicit", self.implicit), **csr_state("trust", self.trust)}

    @classmethod
    def restore(cls, a: dict[str, np.ndarray]) -> RatingFactors:
        mu, lo, hi = (float(x) for x in a["scale"])
        return cls(mu, lo, hi, a["user_bias"], a["item_bias"], a["user_factors"], a["item_factors"],
                   a["implicit_factors"], a["trust_factors"], csr_restore("implicit", a), csr_restore("trust", a))


def _shares(weights: sp.csr_matrix, factors: np.ndarray, u: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row ``u``'s columns and their shares w_uc ⟨f_c, q⟩ (none when the factors are unused)."""
    if not factors.shape[0]:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    a, b = weights.indptr[u], weights.indptr[u + 1]
    cols = weights.indices[a:b]
    return cols.astype(np.int64), weights.data[a:b] * (factors[cols] @ q)
