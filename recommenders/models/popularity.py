"""Popularity: the most-interacted items, globally, time-decayed, or within your tags.

The baseline every personalised recommender must beat, and the end of every fallback
chain (``recommend_anonymous`` serves users the graph has never seen).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason, Recommendation, RecommendsAnonymously
from kgrec.recommenders.config import ModelConfig, Positive
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.models.sparse_rows import interaction_weights, snapshot_view
from kgrec.recommenders.ranking import top_k
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

DAY = 86_400


@dataclass(frozen=True)
class PopularityConfig(ModelConfig):
    """``mode``: ``global`` (audience size), ``decayed`` (each interaction counts
    2^(-age/half_life), age measured from the newest interaction) or ``tag`` (popularity
    times the share of your items that carry each of the item's tags)."""

    mode: Literal["global", "decayed", "tag"] = "global"
    half_life_days: Annotated[float, Positive] = 30.0


@register("popularity", fit_cost=FitCost(fixed=0.01), default_rank=10, hybrid_rank=7)
class Popularity(ScoredRecommender, RecommendsAnonymously):
    Config = PopularityConfig
    config: PopularityConfig

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        if self.config.mode not in ("global", "decayed", "tag"):
            raise ValueError(f"unknown popularity mode {self.config.mode!r}; expected global, decayed or tag")
        binary = interaction_weights(snapshot, "binary")  # shared by the models over this snapshot
        self._binary = binary
        self._item_tags = snapshot_view(snapshot, ("item_tags", "binary"), lambda: _binary_tags(snapshot))
        self._audience = np.asarray(binary.sum(axis=0)).ravel()

    def _fit(self, snapshot: GraphSnapshot) -> None:
        if self.config.mode == "decayed":
            ts = snapshot.timestamps.astype(np.float64)
            known = ts >= 0
            ref = ts[known].max() if known.any() else 0.0
            age_days = np.where(known, (ref - ts) / DAY, 0.0)
            decay = np.exp2(-age_days / self.config.half_life_days)
            m = sp.csr_matrix((decay, snapshot.interactions.indices, snapshot.interactions.indptr),
                              shape=snapshot.interactions.shape)
            pop = np.asarray(m.sum(axis=0)).ravel()
        else:
            pop = self._audience.copy()
        top = pop.max(initial=0.0)
        self._pop = pop / top if top > 0 else pop

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"pop": ("items",)}

    def _state(self) -> dict[str, np.ndarray]:
        return {"pop": self._pop}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._pop = arrays["pop"]

    def _tag_share(self, u: int) -> np.ndarray:
        n = self._binary.indptr[u + 1] - self._binary.indptr[u]
        if n == 0:
            return np.zeros(self._item_tags.shape[1])
        return np.asarray((self._binary[u] @ self._item_tags).todense()).ravel() / n

    def _scores(self, u: int) -> np.ndarray | None:
        if self.config.mode != "tag":
            return self._pop
        share = self._tag_share(u)
        if not share.any():
            return None
        return self._pop * (self._item_tags @ share)

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        p = self._paths
        audience = int(self._audience[i])
        if self.config.mode == "global":
            return [p.popular(i, score, f"{audience} people interacted with {self._snap().title(i)}")]
        if self.config.mode == "decayed":
            return [p.popular(i, score, f"{self._snap().title(i)} is popular lately "
                                        f"({audience} people, half-life {self.config.half_life_days:g} days)")]
        share = self._tag_share(u)
        reasons = []
        snap = self._snap()
        mine = snap.user_items(u)
        weights = snap.interactions.data[snap.interactions.indptr[u] : snap.interactions.indptr[u + 1]]
        for t in self._item_tags.indices[self._item_tags.indptr[i] : self._item_tags.indptr[i + 1]]:
            if share[t] <= 0:
                continue
            has = np.asarray(self._item_tags[mine, t].todense()).ravel() > 0
            cand, w = mine[has], weights[has]
            j = int(cand[np.lexsort((cand, -w))[0]])
            text = (f"{share[t]:.0%} of your items are tagged {snap.tag_names[t]}, like {snap.title(j)}; "
                    f"{snap.title(i)} is one of its most popular ({audience} people)")
            reasons.append(p.shared_tag(u, j, int(t), i, self._pop[i] * share[t], text))
        return reasons

    def explain_anonymous(self, item_id: str) -> list[Reason]:
        """Why a popular item is shown to a user the graph does not know: its audience."""
        snap = self._snap()
        i = snap.items.get(item_id)
        if i is None or self._audience[i] <= 0:
            return []
        score = float(self._pop[i] if self.config.mode != "tag" else self._audience[i])
        return [self._paths.popular(i, score, f"{int(self._audience[i])} people interacted with {snap.title(i)}")]

    def anonymous_scores(self) -> np.ndarray:
        """Global popularity (the audience in ``tag`` mode, which needs a user's tags)."""
        self._snap()
        return np.array(self._pop if self.config.mode != "tag" else self._audience, dtype=np.float64, copy=True)

    def recommend_anonymous(self, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        """The globally popular items, for a user the graph does not know."""
        snap = self._snap()
        scores = self.anonymous_scores()
        if exclude:
            scores[[j for j in (snap.items.get(x) for x in exclude) if j is not None]] = -np.inf
        return [Recommendation(snap.items.ids[j], float(scores[j]), self.name) for j in top_k(scores, k)]


def _binary_tags(snapshot: GraphSnapshot) -> sp.csr_matrix:
    """Item × tag, 1 where the item carries the tag (read-only: shared per snapshot)."""
    tags = sp.csr_matrix(snapshot.item_tags, dtype=np.float64, copy=True)
    tags.data[:] = 1.0
    for part in (tags.data, tags.indices, tags.indptr):
        part.setflags(write=False)
    return tags
