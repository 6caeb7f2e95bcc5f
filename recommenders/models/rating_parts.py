"""How a predicted rating splits into parts: ``RatingExplanation`` and the ``ExplainsRatings`` ability.

A rating model that can say why it predicts what it does (``svdpp``, ``trustsvd``) inherits
``ExplainsRatings`` next to ``PredictsRatings`` (``recommenders.base``); the read path
(``recommenders.serving.ratings``) checks it with ``isinstance`` and serves the parts with each
rating, in ``kgrec predict`` and ``GET /v1/users/{id}/ratings`` alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RatingPart:
    """One named share of a predicted rating: a co-rated item or a trusted user."""

    id: str
    name: str | None
    contribution: float


@dataclass(frozen=True)
class RatingExplanation:
    """A predicted rating split into additive parts. ``global_mean + user_bias + item_bias +
    taste + sum(co_rated) + co_rated_rest + sum(trusted) + trusted_rest + clipped == rating``:
    ``taste`` is the user's own taste factors against the item's, ``*_rest`` what the parts not
    listed add up to (``*_omitted`` of them) and ``clipped`` what clipping to the scale took off.
    ``baseline`` says why a part is missing: "unknown user", "unknown item" or both (None: the
    full model answered)."""

    rating: float
    global_mean: float
    user_bias: float = 0.0
    item_bias: float = 0.0
    taste: float = 0.0
    co_rated: tuple[RatingPart, ...] = ()
    co_rated_rest: float = 0.0
    co_rated_omitted: int = 0
    trusted: tuple[RatingPart, ...] = ()
    trusted_rest: float = 0.0
    trusted_omitted: int = 0
    clipped: float = 0.0
    baseline: str | None = None

    def total(self) -> float:
        """The sum of the parts (equals ``rating``)."""
        return (self.global_mean + self.user_bias + self.item_bias + self.taste
                + sum(p.contribution for p in self.co_rated) + self.co_rated_rest
                + sum(p.contribution for p in self.trusted) + self.trusted_rest + self.clipped)


class ExplainsRatings(ABC):
    """Splits a predicted rating into its additive parts (``RatingExplanation``)."""

    @abstractmethod
    def explain_ratings(self, user_id: str, item_ids: Sequence[str], limit: int = 3) -> list[RatingExplanation]:
        """One explanation per item (the ``limit`` largest co-rated and trusted shares listed);
        an unknown user or item gets its baseline's parts, never an exception."""
