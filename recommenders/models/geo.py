"""Geo: places near where you go, and near where your friends go, weighted by their audience.

A per-user kernel density over the places the user visited (``recommenders.models.geo_density``),
with bandwidths that are quantiles of the dataset's own distance unit (``GeoScale``: the
within-user nearest-neighbour distances), never fixed kilometres:

    score(u, i) = log(f_h(i) + wide_weight · F_H(i) + friend_weight · G_h(i))
                  + popularity_weight · log(1 + audience(i))

``f_h``: the narrow density (bandwidth h = the ``bandwidth`` quantile, cut at ``cutoff · h``);
``F_H``: a wide one (H = the ``wide`` quantile, cut at 2H) so that places in the user's city but
not next door still rank; ``G_h``: the density of the user's friends' places (friendships made
symmetric). Items no kernel reaches, and items without coordinates, are not proposed (−inf).
Options left None are chosen inside ``fit`` on a seeded validation cut of the snapshot (the
shared validation cut: ``recommenders.models.geo_choice``'s grid in the dataset's own unit,
NDCG@10 on up to ``validation_users`` users); set (``kgrec train --set geo.bandwidth=0.5``), they
are kept. The optuna tuner leaves the model alone: its own grid covers its options with three
density passes, where a tuning trial would pay for one setting what the grid pays for all.
The model applies only to graphs with coordinates (``applies_to``): elsewhere default training
and the hybrid leave it out.

``score_from_place`` (the read path's ``at=LAT,LON``) scores the same way around one point.
Reasons name the distance and the place: "0.2 km from Café Central, where you checked in 4
times" — the path (you)-[:INTERACTED]->(that place)-[:NEAR]->(the item), whose Cypher returns
``point.distance`` of the two ``Item.location``s — plus the nearest place a friend visited and
the item's audience. The score is not a sum over those paths: reasons are evidence, their
contributions the shares of the three terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason, ScoresFromPlace
from kgrec.recommenders.config import AtLeastOne, ConfigError, ModelConfig, NonNegative, Positive, Range
from kgrec.recommenders.models.geo_choice import Options, ResolvedOptions, choose
from kgrec.recommenders.models.geo_density import EMPTY, Sparse, UserPlaces, item_density, on, point_density, union
from kgrec.recommenders.models.geo_space import QUANTILES, GeoScale, Places, has_coordinates, pairwise_km
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.models.sparse_rows import item_users, snapshot_view
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim


@dataclass(frozen=True)
class GeoConfig(ModelConfig):
    """``bandwidth``, ``wide``: the narrow and wide kernels' bandwidths as quantiles of the learned
    unit (one of ``QUANTILES``); ``popularity_weight``, ``wide_weight``, ``friend_weight``: see the
    module docstring. None (the default) = chosen on the validation cut inside ``fit``."""

    bandwidth: Annotated[float, Range(0, 1)] | None = None
    popularity_weight: Annotated[float, NonNegative] | None = None
    wide_weight: Annotated[float, NonNegative] | None = None
    friend_weight: Annotated[float, NonNegative] | None = None
    wide: Annotated[float, Range(0, 1)] = 0.9
    cutoff: Annotated[float, Positive] = 3.0
    wide_cutoff: Annotated[float, Positive] = 2.0
    weighting: Literal["binary", "log"] = "log"
    validation_users: Annotated[int, AtLeastOne] = 1000
    validation_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("bandwidth", "wide"):
            value = getattr(self, name)
            if value is not None and value not in QUANTILES:
                raise ConfigError(self.model_name, name, f"must be one of {', '.join(map(str, QUANTILES))} "
                                  f"(a quantile of the learned distance unit; got {value!r})")


def geo_places(snapshot: GraphSnapshot) -> Places | None:
    """The snapshot's located items, built once per snapshot (shared with the hybrid and serving)."""
    return snapshot_view(snapshot, ("geo_places",), lambda: Places.of(snapshot))


def user_places(snapshot: GraphSnapshot, places: Places, weighting: str) -> UserPlaces:
    return snapshot_view(snapshot, ("geo_user_places", weighting), lambda: UserPlaces.of(snapshot, places, weighting))


@register("geo", fit_cost=FitCost(nnz=30.0, fixed=2.0), default_rank=5, hybrid_rank=10)
class Geo(ScoredRecommender, ScoresFromPlace):
    Config = GeoConfig
    config: GeoConfig
    additive: ClassVar[bool] = False
    #: Scores are log densities (negative where a place is merely near): every finite one counts.
    positive_only: ClassVar[bool] = False

    @classmethod
    def applies_to(cls, snapshot: GraphSnapshot) -> bool:
        """Only a graph whose items have coordinates gives geography anything to learn."""
        return has_coordinates(snapshot)

    # -- fitting ------------------------------------------------------------------------------
    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self._places = geo_places(snapshot)
        self._up = user_places(snapshot, self._places, self.config.weighting) if self._places is not None else None

    def _fit(self, snapshot: GraphSnapshot) -> None:
        c = self.config
        self.validation: dict[str, float] = {}
        if self._places is None or self._up is None:
            self._scale = GeoScale(tuple(1.0 for _ in QUANTILES), 0)  # nothing is located: nothing is scored
            self._options = ResolvedOptions(0.5, 0.0, 0.0, 0.0)
            return
        self._scale = GeoScale.learn(snapshot.interactions, self._places, c.seed)
        given = Options(c.bandwidth, c.popularity_weight, c.wide_weight,
                        c.friend_weight if snapshot.follows.nnz else 0.0)
        if given.complete():
            self._options = given.resolved()
        else:
            self._options, self.validation = choose(snapshot, given, c, lambda s, p: user_places(s, p, c.weighting))

    @property
    def chosen(self) -> dict[str, float]:
        """The options in use (set, or chosen on validation)."""
        return self._options.as_dict()

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"scale": (None,), "options": (None,)}

    def _state(self) -> dict[str, np.ndarray]:
        return {"scale": self._scale.as_array(), "options": self._options.as_array()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._scale = GeoScale.from_array(np.asarray(arrays["scale"]))
        self._options = ResolvedOptions.from_array(np.asarray(arrays["options"]))
        self.validation = {}

    # -- scoring ------------------------------------------------------------------------------
    @property
    def bandwidths(self) -> tuple[float, float]:
        """The narrow and wide bandwidths in km."""
        h = self._scale.km(self._options.bandwidth)
        return h, max(self._scale.km(self.config.wide), h)

    @property
    def places(self) -> UserPlaces | None:
        """Every user's places and their friends' (None on a graph without coordinates)."""
        self._snap()
        return self._up

    @property
    def scale(self) -> GeoScale:
        self._snap()
        return self._scale

    def parts(self, u: int) -> tuple[Sparse, Sparse, Sparse]:
        """User ``u``'s narrow, wide and friends' densities (sparse)."""
        up, o, c = self._up, self._options, self.config
        if up is None:
            return EMPTY, EMPTY, EMPTY
        h, wide_h = self.bandwidths
        own = up.row(up.own, u)
        narrow = item_density(up, own, h, c.cutoff)
        wide = item_density(up, own, wide_h, c.wide_cutoff) if o.wide_weight > 0 else EMPTY
        friends = item_density(up, up.row(up.friends, u), h, c.cutoff) if o.friend_weight > 0 else EMPTY
        return narrow, wide, friends

    def _combine(self, narrow: Sparse, wide: Sparse, friends: Sparse) -> np.ndarray | None:
        items = union(narrow, wide, friends)
        if len(items) == 0:
            return None
        o = self._options
        mix = on(items, narrow) + o.wide_weight * on(items, wide) + o.friend_weight * on(items, friends)
        out = np.full(len(self._snap().items), -np.inf)
        ok = mix > 0
        assert self._up is not None
        out[items[ok]] = np.log(mix[ok]) + o.popularity_weight * np.log1p(self._up.audience[items[ok]])
        return out

    def _scores(self, u: int) -> np.ndarray | None:
        return self._combine(*self.parts(u))

    def score_from_place(self, user_id: str, lat: float, lon: float) -> np.ndarray | None:
        """The score around the point instead of the user's places (friends' places left out:
        they describe where the user usually is); the user's own places are not proposed."""
        snap = self._snap()
        if self._places is None or not (np.isfinite(lat) and np.isfinite(lon)):
            return None
        h, wide_h = self.bandwidths
        c, o = self.config, self._options
        narrow = point_density(self._places, lat, lon, h, c.cutoff)
        wide = point_density(self._places, lat, lon, wide_h, c.wide_cutoff) if o.wide_weight > 0 else EMPTY
        out = self._combine(narrow, wide, EMPTY)
        u = snap.users.get(user_id)
        if out is not None and u is not None:
            out[snap.user_items(u)] = -np.inf
        return out

    # -- explaining ---------------------------------------------------------------------------
    def nearest(self, u: int, i: int) -> tuple[int, float, float]:
        """The place nearest to item ``i`` among user ``u``'s own: (place, km, the user's
        check-ins there); place −1 when the user or the item has no location."""
        up = self._up
        if up is None or not up.places.known[i]:
            return -1, np.nan, 0.0
        own, visits = up.visits(u)
        if len(own) == 0:
            return -1, np.nan, 0.0
        d = pairwise_km(up.places.xyz[[i]], up.places.xyz[own])[0]
        k = int(np.argmin(d))
        return int(own[k]), float(d[k]), float(visits[k])

    def nearest_friend(self, u: int, i: int) -> tuple[int, int, float]:
        """The place nearest to item ``i`` among the places user ``u``'s friends (either way of
        FOLLOWS) visited, and the friend with the most check-ins there: (friend, place, km);
        (−1, −1, nan) when there is none."""
        up = self._up
        if up is None or not up.places.known[i]:
            return -1, -1, np.nan
        theirs, _ = up.row(up.friends, u)
        if len(theirs) == 0:
            return -1, -1, np.nan
        d = pairwise_km(up.places.xyz[[i]], up.places.xyz[theirs])[0]
        k = int(np.argmin(d))
        j = int(theirs[k])
        snap = self._snap()
        f, ft = snap.follows, self._followers()
        friends = np.union1d(f.indices[f.indptr[u]:f.indptr[u + 1]], ft.indices[ft.indptr[u]:ft.indptr[u + 1]])
        users = item_users(snap)
        a, b = users.indptr[j], users.indptr[j + 1]
        visitors, counts = users.indices[a:b], users.data[a:b]
        mine = np.isin(visitors, friends)
        if not mine.any():
            return -1, -1, np.nan
        visitors, counts = visitors[mine], counts[mine]
        v = int(visitors[np.lexsort((visitors, -counts))[0]])
        return v, j, float(d[k])

    def _followers(self) -> Any:
        snap = self._snap()
        return snapshot_view(snap, ("followers",), lambda: snap.follows.T.tocsr())

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        narrow, wide, friends = self.parts(u)
        o, up = self._options, self._up
        assert up is not None
        items = np.array([i])
        own = float(on(items, narrow)[0] + o.wide_weight * on(items, wide)[0])
        fr = float(o.friend_weight * on(items, friends)[0])
        pop = float(o.popularity_weight * np.log1p(up.audience[i]))
        geo = abs(np.log(own + fr)) if own + fr > 0 else 0.0
        total_geo = geo / (geo + pop) if geo + pop > 0 else 1.0
        out = []
        j, km, visits = self.nearest(u, i)
        if j >= 0 and own > 0:
            out.append(self._paths.near_visited(u, j, i, total_geo * own / (own + fr), self._near_text(j, km, visits),
                                                kind="evidence"))
        if fr > 0:
            f, j, km = self.nearest_friend(u, i)
            if f >= 0:
                who = self._paths.user(f).name or self._snap().users.ids[f]
                text = f"{_distance(km)} from {self._snap().title(j)}, where your friend {who} checked in"
                out.append(self._paths.friend_near(u, f, j, i, total_geo * fr / (own + fr), text, kind="evidence"))
        if pop > 0:
            n = int(up.audience[i])
            text = f"{n} {'person' if n == 1 else 'people'} checked in at {self._snap().title(i)}"
            out.append(self._paths.popular(i, 1.0 - total_geo, text, kind="evidence"))
        return out

    def _near_text(self, j: int, km: float, visits: float) -> str:
        times = "once" if visits == 1 else f"{visits:g} times"
        return f"{_distance(km)} from {self._snap().title(j)}, where you checked in {times}"


def _distance(km: float) -> str:
    return f"{km * 1000:.0f} m" if km < 1 else f"{km:.1f} km"
