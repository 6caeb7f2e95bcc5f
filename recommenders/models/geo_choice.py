"""Choosing the geo model's options on a validation cut of the user's own graph.

The grid is written in the dataset's unit (bandwidths are quantiles of the learned ``GeoScale``),
so the same grid fits one dense city and eight spread-out ones. Densities are computed once per
user and bandwidth; the weights (popularity, wide kernel, friends) only recombine them, so the
whole grid costs three density passes over the validation users. Options the user set are kept
and only the others are searched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.models.geo_density import EMPTY, UserPlaces, item_density, on, union
from kgrec.recommenders.models.geo_space import GeoScale, Places


class ChoiceSettings(Protocol):
    """What the search reads of ``GeoConfig`` (a protocol, so this module need not import the model)."""

    @property
    def seed(self) -> int: ...
    @property
    def validation_fraction(self) -> float: ...
    @property
    def validation_users(self) -> int: ...
    @property
    def wide(self) -> float: ...
    @property
    def wide_cutoff(self) -> float: ...
    @property
    def cutoff(self) -> float: ...

K = 10


@dataclass(frozen=True)
class Grid:
    bandwidth: tuple[float, ...] = (0.25, 0.5, 0.75)
    popularity_weight: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    wide_weight: tuple[float, ...] = (0.0, 0.05, 0.3)
    friend_weight: tuple[float, ...] = (0.0, 0.05, 0.3)


GRID = Grid()


@dataclass(frozen=True)
class Options:
    """The four chosen options (None: not set, to be chosen)."""

    bandwidth: float | None
    popularity_weight: float | None
    wide_weight: float | None
    friend_weight: float | None

    def complete(self) -> bool:
        return None not in (self.bandwidth, self.popularity_weight, self.wide_weight, self.friend_weight)

    def resolved(self) -> ResolvedOptions:
        assert self.complete()
        return ResolvedOptions(*(float(v) for v in self.as_tuple()))  # type: ignore[arg-type]

    def as_tuple(self) -> tuple[float | None, ...]:
        return self.bandwidth, self.popularity_weight, self.wide_weight, self.friend_weight


@dataclass(frozen=True)
class ResolvedOptions:
    bandwidth: float
    popularity_weight: float
    wide_weight: float
    friend_weight: float

    def as_dict(self) -> dict[str, float]:
        return {"bandwidth": self.bandwidth, "popularity_weight": self.popularity_weight,
                "wide_weight": self.wide_weight, "friend_weight": self.friend_weight}

    def as_array(self) -> np.ndarray:
        return np.asarray(list(self.as_dict().values()), dtype=np.float64)

    @classmethod
    def from_array(cls, a: np.ndarray) -> ResolvedOptions:
        if len(a) != 4 or not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError("saved geo options must be four finite, non-negative numbers")
        return cls(*(float(v) for v in a))


def _choices(given: float | None, grid: tuple[float, ...]) -> tuple[float, ...]:
    return (given,) if given is not None else grid


def choose(snapshot: GraphSnapshot, given: Options, config: ChoiceSettings,
           places_of: Callable[[GraphSnapshot, Places], UserPlaces]) -> tuple[ResolvedOptions, dict[str, float]]:
    """The grid point (given options fixed) with the best NDCG@10 on a seeded validation cut of
    ``snapshot``, fitted on the cut's training part; and every point's validation NDCG."""
    from kgrec.recommenders.evaluation.validation_cut import validation_cut

    cut = validation_cut(snapshot, config.seed, config.validation_fraction)
    places = Places.of(cut.train)
    bands = _choices(given.bandwidth, GRID.bandwidth)
    pops = _choices(given.popularity_weight, GRID.popularity_weight)
    wides = _choices(given.wide_weight, GRID.wide_weight)
    friends_w = _choices(given.friend_weight, GRID.friend_weight if cut.train.follows.nnz else (0.0,))
    default = ResolvedOptions(bands[len(bands) // 2], pops[0], wides[0], friends_w[0])
    users = np.asarray(cut.users, dtype=np.int64)
    if places is None or len(users) == 0:
        return default, {}
    if len(users) > config.validation_users:
        users = np.sort(np.random.default_rng(config.seed).choice(users, config.validation_users, replace=False))
    up = places_of(cut.train, places)
    scale = GeoScale.learn(cut.train.interactions, places, config.seed)
    wide_h = scale.km(config.wide)
    combos = [(w, f) for w in wides for f in friends_w]
    pop = np.asarray(pops)
    totals = np.zeros((len(bands), len(combos), len(pops)))
    log_aud = np.log1p(up.audience)
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    for u in users.tolist():
        own = up.row(up.own, u)
        if len(own[0]) == 0:
            continue
        relevant, seen = cut.test[u], cut.train.user_items(u)
        ideal = discounts[: min(len(relevant), K)].sum()
        wide = item_density(up, own, wide_h, config.wide_cutoff) if any(w > 0 for w in wides) else EMPTY
        for b, band in enumerate(bands):
            h = scale.km(band)
            narrow = item_density(up, own, h, config.cutoff)
            fr = item_density(up, up.row(up.friends, u), h, config.cutoff) if any(friends_w) else EMPTY
            items = union(narrow, wide, fr)
            items = items[~np.isin(items, seen)]
            if len(items) == 0 or ideal == 0:
                continue
            n_v, w_v, f_v = on(items, narrow), on(items, wide), on(items, fr)
            mix = np.stack([n_v + w * w_v + f * f_v for w, f in combos])  # combos × items
            with np.errstate(divide="ignore"):
                log_mix = np.log(mix)
            scores = (log_mix[:, None, :] + pop[None, :, None] * log_aud[items][None, None, :]).reshape(-1, len(items))
            hits = _hits(scores, np.isin(items, relevant))
            totals[b] += (hits @ discounts[: hits.shape[1]] / ideal).reshape(len(combos), len(pops))
    means = totals / len(users)
    record = {}
    for b, band in enumerate(bands):
        for c, (w, f) in enumerate(combos):
            for q, p in enumerate(pops):
                key = f"bandwidth={band},popularity_weight={p},wide_weight={w},friend_weight={f}"
                record[key] = float(means[b, c, q])
    b, c, q = (int(x) for x in np.unravel_index(int(np.argmax(means)), means.shape))
    return ResolvedOptions(bands[b], pops[q], combos[c][0], combos[c][1]), record


def _hits(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per row, whether each of its ``K`` best finite scores (best first, ties by position: items
    are sorted, as the model's own top-k breaks ties by index) is relevant."""
    k = min(K, scores.shape[1])
    part = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    top, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
    return relevant[top] & np.isfinite(vals)
