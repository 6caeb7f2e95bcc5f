"""One model of a ``Server`` as a plain recommender (write-back and batch scoring use it)."""

from __future__ import annotations

from collections.abc import Callable

from kgrec.recommenders.base import Recommendation
from kgrec.recommenders.serving.query import BUNDLE_ONLY, Query, UserState
from kgrec.recommenders.serving.server import Server


class OwnItems:
    """One model of a ``Server`` as a plain recommender of its own items (no fallback), through
    the read path: the store's dislikes, hidden items and new history apply (write-back)."""

    def __init__(self, server: Server, model: str, state: Callable[[str], UserState] | None = None) -> None:
        server.order(model)  # refuses a model the bundle does not have
        self.server, self.model = server, model
        self._state = state or (lambda _: BUNDLE_ONLY)

    def recommend(self, user_id: str, k: int = 10) -> list[Recommendation]:
        served = self.server.recommend(Query(user_id, k, self.model, fallback=False), self._state(user_id))
        return [Recommendation(s.item, s.score, s.source) for s in served]
