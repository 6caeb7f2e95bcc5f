"""Predicted ratings: what ``kgrec predict`` and ``GET /v1/users/{id}/ratings`` answer.

One read path, as for lists: both call ``predict`` on the same ``Server``, so the same bundle
gives the same numbers. The answering model is the one asked for, else the bundle's rating model
with the lowest validation RMSE (measured in its own fit, on a holdout of the graph's ratings;
the bundle's order breaks ties). A user or item the model cannot place gets the baseline — the
global mean plus the bias that is known — and says so in ``baseline``; never an error.

With ``limit`` > 0 each answer carries its explanation (``RatingExplanation``: global mean, user
and item biases, the user's taste against the item's, the largest shares of co-rated items and
trusted users, and what the rest and clipping add), whose parts add up to the rating.
Predictions come from the bundle: ratings written since it was trained count from the next
``kgrec train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgrec.recommenders.base import PredictsRatings
from kgrec.recommenders.models.rating_parts import ExplainsRatings, RatingExplanation, RatingPart
from kgrec.recommenders.serving.server import Server


class NoRatingModel(ValueError):
    """The bundle has no model that predicts ratings, or the one asked for is not one."""


@dataclass(frozen=True)
class PredictedRating:
    user: str
    item: str
    rating: float
    model: str
    baseline: str | None = None
    explanation: RatingExplanation | None = None

    def to_dict(self, title: str | None = None) -> dict[str, Any]:
        """The JSON shape of one answer (the API's)."""
        out: dict[str, Any] = {"item": self.item, "title": title, "rating": self.rating, "baseline": self.baseline}
        e = self.explanation
        if e is not None:
            out["explanation"] = {
                "global_mean": e.global_mean, "user_bias": e.user_bias, "item_bias": e.item_bias, "taste": e.taste,
                "co_rated": [_part("item", p) for p in e.co_rated], "co_rated_rest": e.co_rated_rest,
                "co_rated_omitted": e.co_rated_omitted,
                "trusted": [_part("user", p) for p in e.trusted], "trusted_rest": e.trusted_rest,
                "trusted_omitted": e.trusted_omitted, "clipped": e.clipped,
            }
        return out


def _part(kind: str, p: RatingPart) -> dict[str, Any]:
    return {kind: p.id, "name": p.name, "contribution": p.contribution}


def rating_model(server: Server, model: str | None = None) -> str:
    """The model that answers (see the module doc); ``NoRatingModel`` when there is none."""
    raters = server.raters
    if model is not None:
        if model not in raters:
            have = ", ".join(raters) or "none"
            raise NoRatingModel(f"model {model!r} does not predict ratings; this bundle's rating models: {have}")
        return model
    if not raters:
        raise NoRatingModel("this bundle has no model that predicts ratings (its graph had no explicit ratings)")
    order = list(raters)

    def error(name: str) -> tuple[float, int]:
        rater = raters[name]
        assert isinstance(rater, PredictsRatings)  # Server.raters holds only those
        value = rater.validation_rmse
        return (float("inf") if value is None else value, order.index(name))

    return min(order, key=error)


def predict(server: Server, pairs: Sequence[tuple[str, str]], model: str | None = None,
            limit: int = 0) -> list[PredictedRating]:
    """One answer per (user, item) pair, in order; explanations with ``limit`` > 0 (each lists
    up to ``limit`` co-rated items and trusted users)."""
    name = rating_model(server, model)
    rater = server.raters[name]
    if isinstance(rater, ExplainsRatings):
        by_user: dict[str, list[int]] = {}
        for n, (user, _) in enumerate(pairs):
            by_user.setdefault(user, []).append(n)
        out: list[PredictedRating | None] = [None] * len(pairs)
        for user, rows in by_user.items():
            explained = rater.explain_ratings(user, [pairs[n][1] for n in rows], limit)
            for n, e in zip(rows, explained, strict=True):
                out[n] = PredictedRating(user, pairs[n][1], e.rating, name, e.baseline, e if limit > 0 else None)
        return [p for p in out if p is not None]
    assert isinstance(rater, PredictsRatings)  # Server.raters holds only those
    values = rater.predict_ratings([u for u, _ in pairs], [i for _, i in pairs]) if pairs else np.zeros(0)
    return [PredictedRating(u, i, float(r), name) for (u, i), r in zip(pairs, values, strict=True)]
