"""What the hybrid's ranker knows about a (user, candidate) pair.

Candidates are the union of every component's top ``n`` items for the user. Each is
described by:

- per component: its reciprocal rank in that component's list (0 when absent) and its score
  standardised over the user's candidates (``<component>:rr``, ``<component>:z``);
- the item: log audience; the cosine between the user's tag profile and the item's tags; how
  many of the user's followed users chose it (log); how many components proposed it;
- the user: log number of items and of followed users (they let a tree ranker trust the
  components differently for light and heavy users, or users with and without friends);
- time, on graphs with timestamps: how long after the user's last interaction the item's
  first one came (days, signed log), the gap between the item's and the user's median
  times, and how many of the item's interactions fall within 30 days of the user's active
  period (log, and as a share of its audience) — what was around when the user was;
- ratings, on graphs with explicit ratings (``recommenders.evaluation.explicit_ratings``): the
  item's mean rating (shrunk towards the global mean) and its difference from the user's own
  mean; and the rating a rating model predicts for the pair, minus the user's mean
  (``recommenders.hybrid.rating_feature``: an optional group, kept only when it wins on validation);
- geography, when the hybrid has the ``geo`` component (graphs with coordinates): twelve
  columns describing the place against the user's places (``recommenders.hybrid.geo_features``).

All of it is computed from the snapshot the hybrid is fitted on (the validation cut's
training part while learning, the whole graph when serving), never from held-out pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import PredictsRatings, Recommender
from kgrec.recommenders.evaluation.explicit_ratings import rating_values
from kgrec.recommenders.hybrid.geo_features import GEO, GeoFeatures
from kgrec.recommenders.models.cosession import has_timestamps
from kgrec.recommenders.models.sparse_rows import csr_restore, csr_state

ITEM_USER = ("log_audience", "tag_cosine", "log_friends", "n_sources", "log_user_items", "log_user_follows")
TIME = ("first_after_last", "median_gap", "log_window", "window_share")
RATING = ("item_rating", "rating_vs_user")
PREDICTED = ("predicted_rating",)
DAY = 86400.0
#: The window around a user's active period in which an item's interactions count (seconds).
WINDOW = 30 * DAY
#: Pseudo-ratings that shrink an item's (a user's) mean rating towards the global mean.
ITEM_DAMPING, USER_DAMPING = 10.0, 5.0


#: A user's candidates (sorted item indices), their feature rows (None: no candidate) and each
#: component's ranked top list.
Rows = tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]


def has_ratings(snapshot: GraphSnapshot, share: float = 0.5) -> bool:
    r = rating_values(snapshot)
    return bool(len(r) and (~np.isnan(r)).mean() >= share)


class FeatureSpace:
    """The per-user and per-item statistics of one snapshot, and the feature rows built from them."""

    #: The per-user and per-item matrices a fitted hybrid saves (``saved_arrays``) and maps at load
    #: (``saved``) instead of deriving them again in every process, by name with their dimensions.
    SAVED: ClassVar[dict[str, tuple[str, str]]] = {"features_tag_vectors": ("items", "tags"),
                                                   "features_profiles": ("users", "tags"),
                                                   "features_friend_items": ("users", "items")}

    def __init__(self, snapshot: GraphSnapshot, components: Sequence[str], time: bool, ratings: bool,
                 predicted: bool = False, rater: Recommender | None = None,
                 saved: Mapping[str, np.ndarray] | None = None) -> None:
        self.components = tuple(components)
        self.time, self.ratings, self.predicted = time, ratings, predicted
        self.names = self.names_for(components, time, ratings, predicted)
        #: The model whose predicted ratings fill the ``predicted_rating`` column (zeros without one).
        self.rater = rater if isinstance(rater, PredictsRatings) else None
        self._user_ids, self._item_ids = snapshot.users.ids, snapshot.items.ids
        #: The geographic columns' source, set once the ``geo`` component is fitted (``with_geo``).
        self.geo: GeoFeatures | None = None
        x = sp.csr_matrix(snapshot.interactions, dtype=np.float64, copy=True)
        x.data[:] = 1.0
        self._audience = np.asarray(x.sum(axis=0)).ravel()
        self._user_items = np.diff(x.indptr).astype(np.float64)
        tags = sp.csr_matrix(snapshot.item_tags, dtype=np.float64, copy=True)
        tags.data = np.log1p(tags.data)
        norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
        inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        follows = sp.csr_matrix(snapshot.follows, dtype=np.float64, copy=True)
        follows.data[:] = 1.0
        self._follows = np.diff(follows.indptr).astype(np.float64)
        if saved is None:  # canonical (sorted), as they are saved: a loaded hybrid computes the same bits
            self.tag_vectors = _canonical(sp.diags(inverse) @ tags)
            self._profiles = _canonical(x @ self.tag_vectors)  # each user's summed item-tag vectors
            self._friend_items = _canonical(follows @ x)  # how many followed users have each item
        else:  # as ``saved_arrays`` wrote them at fit: mapped, shared, not derived again per process
            self.tag_vectors, self._profiles, self._friend_items = (csr_restore(n, saved) for n in self.SAVED)
        if time:
            self._prepare_time(snapshot)
        if ratings:
            self._prepare_ratings(snapshot)

    def saved_arrays(self) -> dict[str, np.ndarray]:
        """The matrices of ``SAVED``, as arrays to save with the fitted hybrid."""
        matrices = (self.tag_vectors, self._profiles, self._friend_items)
        return {k: v for name, m in zip(self.SAVED, matrices, strict=True) for k, v in csr_state(name, m).items()}

    @staticmethod
    def names_for(components: Sequence[str], time: bool, ratings: bool, predicted: bool = False) -> list[str]:
        """Feature names, in column order: two per component, then the item/user, time, rating
        and (with a ``geo`` component) geographic ones."""
        names = [f"{c}:{kind}" for c in components for kind in ("rr", "z")] + list(ITEM_USER)
        names += (list(TIME) if time else []) + (list(RATING) if ratings else [])
        names += list(PREDICTED) if predicted else []
        return names + (list(GEO) if "geo" in components else [])

    def with_geo(self, geo: GeoFeatures) -> None:
        """Describe pairs geographically too, from the fitted ``geo`` component's features."""
        self.geo = geo

    @staticmethod
    def available(snapshot: GraphSnapshot) -> tuple[bool, bool, bool]:
        """Whether the snapshot has timestamps and ratings to describe pairs with (the last: and
        predicted ratings, which need ratings)."""
        ratings = has_ratings(snapshot)
        return has_timestamps(snapshot), ratings, ratings

    def _prepare_time(self, snapshot: GraphSnapshot) -> None:
        x = snapshot.interactions
        n_users, n_items = x.shape
        rows = np.repeat(np.arange(n_users), np.diff(x.indptr))
        ts = snapshot.timestamps.astype(np.float64)
        ok = ts >= 0
        self._u_first, self._u_last, self._u_mid = _medians(rows[ok], ts[ok], n_users)
        self._i_first, _, self._i_mid = _medians(x.indices[ok], ts[ok], n_items)
        order = np.lexsort((ts[ok], x.indices[ok]))
        self._t0 = float(ts[ok].min()) if ok.any() else 0.0
        span = float(ts[ok].max() - self._t0 + 4 * WINDOW) if ok.any() else 1.0
        self._span = span
        self._keys = x.indices[ok][order] * span + (ts[ok][order] - self._t0)  # sorted by item, then time

    def _prepare_ratings(self, snapshot: GraphSnapshot) -> None:
        x = snapshot.interactions
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        r = rating_values(snapshot)
        ok = ~np.isnan(r)
        mu = float(r[ok].mean()) if ok.any() else 0.0
        count_i = np.bincount(x.indices[ok], minlength=x.shape[1])
        self._i_rating = (np.bincount(x.indices[ok], r[ok], minlength=x.shape[1]) + ITEM_DAMPING * mu) / (
            count_i + ITEM_DAMPING)
        count_u = np.bincount(rows[ok], minlength=x.shape[0])
        self._u_rating = (np.bincount(rows[ok], r[ok], minlength=x.shape[0]) + USER_DAMPING * mu) / (
            count_u + USER_DAMPING)

    def rows(self, u: int, scores: Sequence[np.ndarray | None], n: int, at: tuple[float, float] | None = None) -> Rows:
        """User ``u``'s candidate union (sorted item indices), its feature matrix (None when
        nobody proposes) and each component's ranked top ``n``, from each component's scores
        (−inf for items it must not propose); ``at``: the user is at that point now (the
        geographic columns measure from there)."""
        tops = [_top(s, n) for s in scores]
        cand = np.unique(np.concatenate(tops)) if tops else np.zeros(0, dtype=np.int64)
        if len(cand) == 0:
            return cand, None, tops
        cols = []
        sources = np.zeros(len(cand))
        for s, top in zip(scores, tops, strict=True):
            rr = np.zeros(len(cand))
            rr[np.searchsorted(cand, top)] = 1.0 / (1.0 + np.arange(len(top)))
            sources += rr > 0
            cols += [rr, _standardised(s, cand)]
        profile = _dense_row(self._profiles, u)
        a, b = self._profiles.indptr[u], self._profiles.indptr[u + 1]
        pn = float(np.sqrt(np.square(self._profiles.data[a:b]).sum()))  # no BLAS call: steady under load
        tag_cos = np.asarray(self.tag_vectors[cand] @ profile).ravel() / pn if pn > 0 else np.zeros(len(cand))
        ones = np.ones(len(cand))
        cols += [np.log1p(self._audience[cand]), tag_cos, np.log1p(_dense_row(self._friend_items, u)[cand]), sources,
                 ones * np.log1p(self._user_items[u]), ones * np.log1p(self._follows[u])]
        if self.time:
            cols += self._time_columns(u, cand)
        if self.ratings:
            cols += [self._i_rating[cand], self._i_rating[cand] - self._u_rating[u]]
        if self.predicted:
            cols.append(self._predicted(u, cand))
        if "geo" in self.components:
            if self.geo is None:
                raise RuntimeError("the geographic columns need the fitted geo component (with_geo)")
            return cand, np.hstack([np.column_stack(cols), self.geo.rows(u, cand, at)]), tops
        return cand, np.column_stack(cols), tops

    def _predicted(self, u: int, cand: np.ndarray) -> np.ndarray:
        """The rater's predicted ratings of the candidates minus the user's mean rating."""
        if self.rater is None:
            return np.zeros(len(cand))
        ids = self._item_ids
        p = self.rater.predict_ratings([self._user_ids[u]] * len(cand), [ids[j] for j in cand.tolist()])
        return np.asarray(p, dtype=np.float64) - (self._u_rating[u] if self.ratings else 0.0)

    def _time_columns(self, u: int, cand: np.ndarray) -> list[np.ndarray]:
        if np.isnan(self._u_last[u]):
            return [np.zeros(len(cand))] * len(TIME)
        lo = cand * self._span + (self._u_first[u] - WINDOW - self._t0)
        hi = cand * self._span + (self._u_last[u] + WINDOW - self._t0)
        window = (np.searchsorted(self._keys, hi, "right") - np.searchsorted(self._keys, lo, "left")).astype(float)
        return [np.nan_to_num(_signed_log_days(self._i_first[cand] - self._u_last[u])),
                np.nan_to_num(_signed_log_days(self._i_mid[cand] - self._u_mid[u])),
                np.log1p(window), window / np.maximum(self._audience[cand], 1.0)]


def _top(s: np.ndarray | None, n: int) -> np.ndarray:
    """The ``n`` best finite scores' indices, best first (ties by index)."""
    if s is None:
        return np.zeros(0, dtype=np.int64)
    finite = np.isfinite(s)
    m = min(n, int(finite.sum()))
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-np.where(finite, s, -np.inf), m - 1)[:m]
    return part[np.lexsort((part, -s[part]))]


def _standardised(s: np.ndarray | None, cand: np.ndarray) -> np.ndarray:
    """A component's scores of the candidates, standardised over the finite ones; items it
    must not propose get its lowest standardised score."""
    z = np.zeros(len(cand))
    if s is None:
        return z
    v = s[cand]
    ok = np.isfinite(v)
    if ok.sum() > 1:
        mu, sd = v[ok].mean(), v[ok].std()
        if sd > 0:
            z[ok] = (v[ok] - mu) / sd
            z[~ok] = (v[ok].min() - mu) / sd
    return z


def _medians(groups: np.ndarray, ts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: first, last and median timestamp (NaN for a group without any)."""
    first, last, mid = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if len(ts) == 0:
        return first, last, mid
    order = np.lexsort((ts, groups))
    g, t = groups[order], ts[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    first[g[starts]] = t[starts]
    last[g[starts]] = t[ends - 1]
    mid[g[starts]] = t[(starts + ends - 1) // 2]
    return first, last, mid


def _signed_log_days(seconds: np.ndarray) -> np.ndarray:
    return np.sign(seconds) * np.log1p(np.abs(seconds) / DAY)


def _dense_row(m: sp.csr_matrix, r: int) -> np.ndarray:
    """Row ``r`` of a CSR matrix as a dense vector, without scipy's indexing overhead."""
    out = np.zeros(m.shape[1])
    a, b = m.indptr[r], m.indptr[r + 1]
    out[m.indices[a:b]] = m.data[a:b]
    return out


def _canonical(m: sp.spmatrix) -> sp.csr_matrix:
    """``m`` as CSR with sorted column indices and no duplicates."""
    out = sp.csr_matrix(m)
    out.sum_duplicates()
    return out
