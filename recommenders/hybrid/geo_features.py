"""Geographic features of (user, candidate place) pairs, for the hybrid's ranker.

Present only when the hybrid has the ``geo`` component (which it has exactly when the graph has
coordinates); they are computed from that fitted component, on the snapshot the hybrid ranks
(the validation cut's training part while learning, the whole graph when serving). Distances are
divided by the dataset's learned unit (``GeoScale.unit``, the median within-user
nearest-neighbour distance), so a split means the same in a dense city and across a country.
Places or users without coordinates get ``geo_known`` = 0 and ``UNKNOWN`` elsewhere.

- ``geo_known``: both the place and some place the user visited are located;
- ``geo_dmin``: log(1 + km to the nearest visited place / unit);
- ``geo_visits_nearest``: log(1 + check-ins there);
- ``geo_kde``, ``geo_kde_wide``: log of the user's narrow and wide kernel densities at the place;
- ``geo_n_within``: log(1 + visited places within the scale's 75th percentile);
- ``geo_log_mean_d``: mean over visited places of log(1 + d / unit), the USG power law's
  log-likelihood up to an affine map (Ye et al. 2011);
- ``geo_d_centre``, ``geo_centre_share``: distance to the nearest of the user's check-in centres
  (greedy multi-centre clustering, Cheng et al. 2012, radius = the wide bandwidth; centres with
  at least 5 % of the check-ins) and that centre's share;
- ``geo_local_pop``: the place's log audience minus its neighbourhood's (within the narrow kernel);
- ``geo_friend_kde``: log density of the places the user's friends visited;
- ``geo_user_spread``: log of the user's median nearest-neighbour distance / unit.

With ``at`` (the read path's ``at=LAT,LON``), the user's visited places are replaced by that one
point: distances are measured from where the user is now.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from kgrec.recommenders.base import Recommender
from kgrec.recommenders.models.geo import Geo
from kgrec.recommenders.models.geo_space import MIN_KM, chord_to_km, kernel_at, km_to_chord, pairwise_km, to_xyz

GEO = ("geo_known", "geo_dmin", "geo_visits_nearest", "geo_kde", "geo_kde_wide", "geo_n_within", "geo_log_mean_d",
       "geo_d_centre", "geo_centre_share", "geo_local_pop", "geo_friend_kde", "geo_user_spread")
UNKNOWN = -1.0
#: Density floor inside logs (densities are normalised per user, so at most 1 at a place).
EPS = 1e-6
#: A check-in centre holds at least this share of the user's located check-ins.
CENTRE_SHARE = 0.05
#: Friends' places further than this many bandwidths from a candidate add nothing to its density
#: (their kernel is below 4·10⁻⁶, under ``EPS``); users with many friends have thousands of places.
FRIEND_CUTOFF = 5.0


def centres(xyz: np.ndarray, weights: np.ndarray, radius_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy multi-centre clustering: the most visited unassigned place opens a centre that takes
    every unassigned place within ``radius_km``; centres under ``CENTRE_SHARE`` of the weight are
    dropped (the largest always stays). Returns the centres (unit vectors, weighted means) and
    their shares."""
    order = np.argsort(-weights, kind="stable")
    free = np.ones(len(weights), dtype=bool)
    d = pairwise_km(xyz, xyz)
    found, shares = [], []
    total = weights.sum()
    for p in order:
        if not free[p]:
            continue
        members = free & (d[p] <= radius_km)
        free &= ~members
        m = (weights[members, None] * xyz[members]).sum(axis=0)
        found.append(m / max(float(np.linalg.norm(m)), 1e-12))
        shares.append(weights[members].sum() / total)
    c, s = np.array(found), np.array(shares)
    keep = s >= CENTRE_SHARE
    keep[np.argmax(s)] = True
    return c[keep], s[keep]


class GeoFeatures:
    """The ``GEO`` columns of one fitted ``Geo`` component (on the snapshot it was fitted on)."""

    names = GEO

    def __init__(self, model: Recommender) -> None:
        if not isinstance(model, Geo) or model.places is None:
            raise ValueError("geographic features need a fitted geo model on a graph with coordinates")
        self.m = model
        up = model.places
        self.up, self.places = up, up.places
        self.unit = model.scale.unit
        self.h, self.wide_h = model.bandwidths
        self.r_within = model.scale.km(0.75)
        self.local_pop = self._local_popularity()
        self._per_user: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    def _local_popularity(self) -> np.ndarray:
        """Each place's log audience minus the kernel-weighted mean of its neighbourhood's."""
        p = self.places
        pairs = p.tree.sparse_distance_matrix(p.tree, km_to_chord(self.m.config.cutoff * self.h), output_type="ndarray")
        w = np.exp(-0.5 * (chord_to_km(pairs["v"]) / self.h) ** 2)
        n = len(p.located)
        k = sp.csr_matrix((w, (pairs["i"], pairs["j"])), shape=(n, n))
        aud = np.log1p(self.up.audience)
        mass = np.asarray(k.sum(axis=1)).ravel()
        around = np.divide(np.asarray(k @ aud[p.located]).ravel(), mass, out=aud[p.located].copy(), where=mass > 0)
        out = np.full(len(aud), UNKNOWN)
        out[p.located] = aud[p.located] - around
        return out

    def _user(self, u: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The user's check-in centres, their shares and the user's spread (cached)."""
        got = self._per_user.get(u)
        if got is None:
            own, visits = self.up.visits(u)
            if len(own) == 0:
                got = (np.zeros((0, 3)), np.zeros(0), 0.0)
            else:
                xyz = self.places.xyz[own]
                cen, share = centres(xyz, visits, self.wide_h)
                spread = 0.0
                if len(own) >= 2:
                    nn, _ = cKDTree(xyz).query(xyz, k=2)
                    spread = float(np.log(max(float(np.median(chord_to_km(nn[:, 1]))), MIN_KM) / self.unit))
                got = (cen, share, spread)
            self._per_user[u] = got
        return got

    def rows(self, u: int | None, cand: np.ndarray, at: tuple[float, float] | None = None) -> np.ndarray:
        """``len(cand)`` × ``len(GEO)`` features of user ``u``'s candidates (``u`` None: a user
        the graph does not know, described from ``at`` alone)."""
        p, up = self.places, self.up
        cand = np.asarray(cand, dtype=np.int64)
        out = np.full((len(cand), len(GEO)), UNKNOWN)
        out[:, 0] = 0.0
        out[:, GEO.index("geo_local_pop")] = self.local_pop[cand]
        if at is not None:
            xyz = to_xyz(np.array([at[0]]), np.array([at[1]]))
            visits, w = np.zeros(1), np.ones(1)
            cen, share, spread = xyz, np.ones(1), 0.0
        elif u is not None:
            own, visits = up.visits(u)
            xyz, w = p.xyz[own], up.row(up.own, u)[1]
            cen, share, spread = self._user(u)
        else:
            return out
        ok = p.known[cand]
        if len(xyz) == 0 or not ok.any():
            return out
        c = cand[ok]
        d = pairwise_km(p.xyz[c], xyz)
        arg = d.argmin(axis=1)
        dc = pairwise_km(p.xyz[c], cen)
        ci = dc.argmin(axis=1)
        friend = np.zeros(len(c))
        if u is not None and at is None:
            theirs, fw = up.row(up.friends, u)
            friend = kernel_at(p.xyz[c], p.xyz[theirs], fw, self.h, FRIEND_CUTOFF)
        rows = np.arange(len(c))
        cols = {
            "geo_known": np.ones(len(c)),
            "geo_dmin": np.log1p(d[rows, arg] / self.unit),
            "geo_visits_nearest": np.log1p(visits[arg]),
            "geo_kde": np.log(EPS + np.exp(-0.5 * (d / self.h) ** 2) @ w),
            "geo_kde_wide": np.log(EPS + np.exp(-0.5 * (d / self.wide_h) ** 2) @ w),
            "geo_n_within": np.log1p((d <= self.r_within).sum(axis=1)),
            "geo_log_mean_d": np.log1p(d / self.unit).mean(axis=1),
            "geo_d_centre": np.log1p(dc[rows, ci] / self.unit),
            "geo_centre_share": share[ci],
            "geo_friend_kde": np.log(EPS + friend),
            "geo_user_spread": np.full(len(c), spread),
        }
        for name, v in cols.items():
            out[ok, GEO.index(name)] = v
        return out
