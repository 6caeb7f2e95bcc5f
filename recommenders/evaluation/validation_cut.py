"""The validation cut that tuning and the hybrid share, and a fast NDCG@k on it.

``kgrec train`` chooses hyper-parameters, the hybrid's ranker and what the hybrid serves on
one cut of the user's own graph: a seeded per-user random holdout of the training snapshot
(``recommenders.splits.random_holdout``: held-out pairs and their taggings removed), so no
choice ever sees the pairs it is judged on. Every model is judged the way evaluation judges
it (full ranking, the user's training items excluded, NDCG@k with binary relevance), but
from ``score_user`` directly instead of through ``recommend``, which makes a trial cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommender, ScoresAllItems
from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
from kgrec.recommenders.evaluation.splits import Split, random_holdout
from kgrec.recommenders.ranking import top_k

#: Share of each user's interactions the cut holds out, and the fewest a user needs to be held out from.
FRACTION = 0.2
MIN_INTERACTIONS = 5


def validation_cut(snapshot: GraphSnapshot, seed: int, fraction: float = FRACTION) -> Split:
    """The seeded validation cut of ``snapshot``: the same seed gives the same cut."""
    return random_holdout(snapshot, fraction=fraction, seed=seed, min_interactions=MIN_INTERACTIONS)


@dataclass(frozen=True)
class UserSample:
    """Validation users to score: ``users`` in a seeded order, the first ``first`` of them a
    cheap first stage (a trial that does badly there can be pruned before the rest)."""

    users: np.ndarray
    first: int

    @classmethod
    def of(cls, cut: Split, seed: int, max_users: int, first_share: float = 0.3) -> UserSample:
        users = np.asarray(cut.users, dtype=np.int64)
        order = np.random.default_rng(seed).permutation(len(users))
        chosen = users[order[: max(1, max_users)]]
        return cls(chosen, max(1, min(len(chosen), round(first_share * len(chosen)))))


def top_items(model: Recommender, snapshot: GraphSnapshot, u: int, k: int) -> np.ndarray:
    """The ``k`` items ``model`` ranks first for user index ``u`` (training items excluded,
    as ``recommend`` would list them); empty when the model has nothing for the user."""
    if not isinstance(model, ScoresAllItems):
        raise TypeError(f"{model.name} does not score all items, so it cannot be validated this way")
    scores = model.score_user(snapshot.users.ids[u])
    if scores is None:
        return np.zeros(0, dtype=np.int64)
    s = np.array(scores, dtype=np.float64, copy=True)
    s[snapshot.user_items(u)] = -np.inf
    return top_k(s, k, positive_only=model.positive_only)


def user_ndcg(model: Recommender, cut: Split, users: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of each of ``users`` for a model fitted on ``cut.train``."""
    ranked = [top_items(model, cut.train, int(u), k) for u in users]
    return ndcg_of_lists(ranked, [cut.test[int(u)] for u in users], k)
