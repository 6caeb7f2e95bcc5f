"""What one request asks (``Query``) and what the store says of its user (``UserState``): the read
path's inputs, apart from the ``Server`` that answers them so callers can build them cheaply."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from kgrec.recommenders.serving.geo_query import check_geo
from kgrec.recommenders.serving.text_query import parse_q


@dataclass(frozen=True)
class Query:
    """One recommendation request. ``fallback=False`` serves the model's own items only (write-back)."""

    user: str
    k: int = 10
    model: str | None = None
    exclude: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    not_tags: frozenset[str] = frozenset()
    explain: bool = False
    fallback: bool = True
    near: tuple[float, float] | None = None  #: only items within ``radius_km`` of (lat, lon)
    radius_km: float | None = None
    at: tuple[float, float] | None = None  #: where the user is now
    policy: str | None = None  #: ``recommenders.serving.policies``; None: the server's default
    seed: int | None = None  #: the exploring policy's random draw (the API derives it from the request id)
    q: str | None = None  #: free text: only items whose text matches, re-ranked towards it (``text_query``)

    def __post_init__(self) -> None:
        check_geo(self.near, self.radius_km, self.at)
        if self.q is not None:
            object.__setattr__(self, "q", parse_q(self.q))


@dataclass(frozen=True)
class UserState:
    """What the store says beyond the bundle. ``history`` is the user's whole current history,
    given only when it (or their dislikes) differs from the bundle's; ``disliked`` and ``hidden``
    are None when the store was not asked, and then the bundle's own are used."""

    history: Mapping[str, float] | None = None
    disliked: frozenset[str] | None = None
    hidden: frozenset[str] | None = None
    known: bool = False
    #: The user's impressions from the store: item -> times shown, and shown but not chosen.
    shown: Mapping[str, int] | None = None
    skipped: Mapping[str, int] | None = None
    #: The ids of the Attribute nodes the user links to in the store (None: the bundle's).
    attributes: frozenset[str] | None = None


#: Serve from the bundle alone (no store, or the store is unreachable).
BUNDLE_ONLY = UserState()


def with_dislikes(history: Mapping[str, float], disliked: Collection[str]) -> dict[str, float]:
    """A history for models that fold it in: disliked items as negative evidence, weighted like a
    typical item of the user (the median positive weight), overriding a positive interaction."""
    positive = [w for w in history.values() if w > 0]
    weight = float(np.median(positive)) if positive else 1.0
    return {**history, **dict.fromkeys(disliked, -weight)}
