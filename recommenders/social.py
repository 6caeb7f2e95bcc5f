"""Social: trust-weighted CF over FOLLOWS, for users whose own history is thin.

Trust in a followed user f is ``follow weight * (floor + (1 - floor) * taste(u, f))``, where
taste is the cosine similarity of your and f's interactions: a friend with your taste
counts for more, and a user with no history still trusts friends at the floor. Trust is
normalised over your friends; ``score(u, i) = sum_f trust(u, f) * P(f → i) / pop(i)^beta``,
with P(f → i) f's normalised interaction weights. One reason per friend who chose the item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from graph.snapshot import GraphSnapshot
from recommenders.base import Reason
from recommenders.integrity import Dim
from recommenders.scored import (
    ScoredRecommender,
    csr_restore,
    csr_state,
    interaction_weights,
    row_normalise,
    row_values,
    weighted_row_sum,
)


@dataclass(frozen=True)
class SocialConfig:
    """Defaults chosen on a Last.fm 2K validation cut (floor 0.1 beat 0.5; no popularity penalty)."""

    trust_floor: float = 0.1
    beta: float = 0.0
    interaction_weighting: str = "binary"
    seed: int = 42


class Social(ScoredRecommender):
    name: ClassVar[str] = "social"
    Config = SocialConfig

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        if not 0 <= self.config.trust_floor <= 1:
            raise ValueError("trust_floor must be in [0, 1]")
        x = interaction_weights(snapshot, self.config.interaction_weighting)
        self._x = x
        self._p_ui = row_normalise(x)
        audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr).astype(np.float64)
        self._penalty = np.power(np.maximum(audience, 1.0), -self.config.beta)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        f = sp.coo_matrix(snapshot.follows)
        x = self._x
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        dots = np.asarray(x[f.row].multiply(x[f.col]).sum(axis=1)).ravel() if f.nnz else np.zeros(0)
        denom = norms[f.row] * norms[f.col]
        taste = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        floor = self.config.trust_floor
        trust = f.data * (floor + (1 - floor) * taste)
        self._taste = sp.csr_matrix((taste + 1e-12, (f.row, f.col)), shape=f.shape)
        self._taste.sort_indices()
        self._trust = row_normalise(sp.csr_matrix((trust, (f.row, f.col)), shape=f.shape))
        self._trust.sort_indices()

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"trust": ("users", "users"), "taste": ("users", "users")}

    def _state(self) -> dict[str, np.ndarray]:
        return {**csr_state("trust", self._trust), **csr_state("taste", self._taste)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._trust = csr_restore("trust", arrays)
        self._taste = csr_restore("taste", arrays)

    def _friends(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        t = self._trust
        return t.indices[t.indptr[u] : t.indptr[u + 1]], t.data[t.indptr[u] : t.indptr[u + 1]]

    def _taste_of(self, u: int, friends: np.ndarray) -> np.ndarray:
        t = self._taste
        row, vals = t.indices[t.indptr[u] : t.indptr[u + 1]], t.data[t.indptr[u] : t.indptr[u + 1]]
        return vals[np.searchsorted(row, friends)]

    def _scores(self, u: int) -> np.ndarray | None:
        friends, trust = self._friends(u)
        if len(friends) == 0:
            return None
        return weighted_row_sum(self._p_ui, friends, trust) * self._penalty

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        friends, trust = self._friends(u)
        into_i = row_values(self._p_ui, friends, i)
        tastes = self._taste_of(u, friends)
        reasons = []
        for f, tr, p, taste in zip(friends.tolist(), trust.tolist(), into_i.tolist(), tastes.tolist(), strict=True):
            if p == 0:
                continue
            name = self._paths.user(f).name or self.snapshot.users.ids[f]
            text = f"You follow {name} (taste similarity {taste:.2f}), who chose {self.snapshot.title(i)}"
            reasons.append(self._paths.friend(u, f, i, tr * p * float(self._penalty[i]), text))
        return reasons
