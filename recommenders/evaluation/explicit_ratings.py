"""Which interactions carry an explicit rating, and on what scale.

A graph's ratings are the ``rating`` property of its ``INTERACTED`` relationships
(``GraphSnapshot.ratings``) wherever one is set; the interactions without one are not ratings.
A graph with no rating property at all may still hold ratings in its weights: ``kgrec load csv``
of a ratings file without a ``rating`` column puts the stars in ``weight``. The weights are read
as ratings only when they look like an explicit scale — all four of:

1. every weight lies on a half-step grid (``2 w`` is a whole number) within [0.5, 10];
2. there are at least 3 and at most 20 distinct values (0.5 … 10 in half steps is 20);
3. the largest value is common: at least 2 % of the interactions (people use the top of a
   rating scale; the largest of a set of counts is a rare outlier);
4. the smallest value is not the most frequent one (counts pile up at their minimum: most
   pairs are played or visited once; ratings pile up in the middle or at the top).

Play counts (Last.fm) and check-in counts (Gowalla) fail 1 and 3, binary feedback fails 2, and the
Poisson "how often" weights of ``loaders.synthetic`` fail 3; MovieLens stars (0.5–5), FilmTrust
(0.5–4) and 1–10 scales pass. Predictions are clipped to the scale the ratings use:
[their minimum, their maximum].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot

#: The grid and range of weights that may be read as ratings (rule 1 above).
STEP, LOWEST, HIGHEST = 0.5, 0.5, 10.0
#: Distinct values a rating scale has (rule 2).
MIN_LEVELS, MAX_LEVELS = 3, 20
#: The share of interactions the top value must hold (rule 3).
TOP_SHARE = 0.02


def weights_look_like_ratings(weights: np.ndarray) -> bool:
    """Whether interaction weights are an explicit rating scale (the four rules of the module doc)."""
    w = np.asarray(weights, dtype=np.float64)
    if len(w) == 0 or not np.isfinite(w).all():
        return False
    doubled = w / STEP
    if w.min() < LOWEST or w.max() > HIGHEST or not np.allclose(doubled, np.round(doubled), atol=1e-6):
        return False
    values, counts = np.unique(np.round(doubled).astype(np.int64), return_counts=True)
    if not MIN_LEVELS <= len(values) <= MAX_LEVELS:
        return False
    if counts[-1] < TOP_SHARE * len(w):
        return False
    return bool(counts[0] < counts.max())


def rating_values(snapshot: GraphSnapshot) -> np.ndarray:
    """One rating per interaction, aligned with ``snapshot.interactions.data`` (float64, NaN where
    the interaction carries none): the rating property where the graph has any, else the weights
    when they look like ratings, else all NaN."""
    stored = np.asarray(snapshot.ratings, dtype=np.float64)
    if len(stored) and not np.isnan(stored).all():
        return stored
    weights = np.asarray(snapshot.interactions.data, dtype=np.float64)
    if weights_look_like_ratings(weights):
        return weights.copy()
    return np.full(len(weights), np.nan)


@dataclass(frozen=True)
class Ratings:
    """The rated interactions of a snapshot as index arrays, and their scale."""

    user: np.ndarray  # int64 user indices
    item: np.ndarray  # int64 item indices
    rating: np.ndarray  # float64
    source: str  # "rating" (the INTERACTED property) or "weight"

    @property
    def low(self) -> float:
        return float(self.rating.min())

    @property
    def high(self) -> float:
        return float(self.rating.max())

    def __len__(self) -> int:
        return len(self.rating)


def explicit_ratings(snapshot: GraphSnapshot) -> Ratings | None:
    """The snapshot's explicit ratings (see the module doc), or None when it has none."""
    values = rating_values(snapshot)
    ok = ~np.isnan(values)
    if not ok.any():
        return None
    m = snapshot.interactions
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    stored = len(snapshot.ratings) and not np.isnan(np.asarray(snapshot.ratings, dtype=np.float64)).all()
    return Ratings(rows[ok], m.indices[ok].astype(np.int64), values[ok], "rating" if stored else "weight")


def has_explicit_ratings(snapshot: GraphSnapshot, minimum: int = 2) -> bool:
    """Whether the snapshot holds at least ``minimum`` explicit ratings (what a rating model needs)."""
    return int((~np.isnan(rating_values(snapshot))).sum()) >= minimum
