"""The fallback chain: the first recommender that has something to say, then the next.

``FallbackChain([graph_walk, itemcf, popularity])`` asks each recommender in turn and fills
the list up to k with items not yet shown, so unknown users, cold users and short lists
all get a full answer. Every item keeps the ``source`` of the recommender that produced it,
so a caller can tell a personalised item from a fallback. A user the graph has never seen
gets the anonymous recommendations of the last member that offers them (popularity).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from recommenders.base import Reason, Recommendation, Recommender


class FallbackChain:
    """Recommend from several recommenders in order of preference."""

    name = "fallback"

    def __init__(self, recommenders: Sequence[Recommender]) -> None:
        if not recommenders:
            raise ValueError("a fallback chain needs at least one recommender")
        self.recommenders = list(recommenders)
        anonymous = [r for r in self.recommenders
                     if hasattr(r, "recommend_anonymous") and hasattr(r, "explain_anonymous")]
        self.anonymous = anonymous[-1] if anonymous else None

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.recommenders]

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        out: list[Recommendation] = []
        taken = set(exclude or ())
        for rec in self.recommenders:
            if len(out) >= k:
                break
            self._extend(out, taken, rec.recommend(user_id, k=k, exclude=taken), k)
        if len(out) < k and self.anonymous is not None and not self._known(user_id):
            self._extend(out, taken, self.anonymous.recommend_anonymous(k=k, exclude=taken), k)
        return out

    def explain(self, user_id: str, item_id: str, source: str | None = None) -> list[Reason]:
        """Reasons from ``source`` if given, else from the first member that has any; a user
        the graph does not know gets the anonymous reasons of the last resort."""
        if self.anonymous is not None and not self._known(user_id):
            if source is None or source == self.anonymous.name:
                return self.anonymous.explain_anonymous(item_id)
            return []
        for rec in self.recommenders:
            if source is not None and rec.name != source:
                continue
            reasons = rec.explain(user_id, item_id)
            if reasons or source is not None:
                return reasons
        return []

    def _known(self, user_id: str) -> bool:
        snap = getattr(self.recommenders[0], "snapshot", None)
        return snap is not None and user_id in snap.users

    @staticmethod
    def _extend(out: list[Recommendation], taken: set[str], recs: list[Recommendation], k: int) -> None:
        for r in recs:
            if len(out) >= k:
                return
            if r.item_id not in taken:
                taken.add(r.item_id)
                out.append(r)
