"""Profile: what people like you chose, for users with few or no interactions.

A user's attributes (the Attribute nodes they link to: age band, gender, occupation, region, …)
predict which items they choose through a ridge regression from one-hot attributes to the
user × item matrix, fitted once for all items (closed form, one small solve):
``profile_i = mean_i + Σ_{a ∈ your attributes} (W[a, i] − mean share of a's kind)``, so each
attribute adds its own, shrunk effect on top of the item's overall rate (a kind you did not give
counts as average; an attribute the fit never saw counts as not given). A history is blended in
as it grows: ``history_i`` is the mean over your items j of the smoothed rate at which people who
chose j chose i, ``(n_ji + s·p_i) / (n_j + s)``, and the score is
``(1 − α)·profile + α·history`` with ``α = n / (n + history_half)`` for n items of history.

Chosen on the user's own data, inside ``fit``: a fifth of the users with attributes are held out
whole (newcomers); the shrinkage and the attribute kinds kept (a kind that does not help is
dropped) are those with the best NDCG@10 on them from their attributes alone, and
``history_half`` the best when 1, 3 and 10 of their items are revealed. The manifest records the
choice, with global popularity's NDCG@10 on the same users.

Reasons add up to the score: the item's base rate is the item's audience (an ``ITEM`` path);
each attribute's share is a path through a person who has it and chose the item (``PEER_GROUP``:
you → age 25-34 ← a peer → the item); each history item's share a co-user (``CO_INTERACTION``).
A share with no such person in the graph is named in the base reason's text instead.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from kgrec.graph.schema import Label
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, PathNode, Reason, ScoresProfiles, TopReasons
from kgrec.recommenders.config import AtLeastOne, ModelConfig, Positive, Range
from kgrec.recommenders.models.profile_ridge import (
    history_scores,
    mean_ndcg,
    profile_scores,
    ridge,
    ridge_predictions,
    wanted,
)
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.models.sparse_rows import ranked_shares
from kgrec.recommenders.reason_paths import CO_INTERACTION
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

#: Shrinkages tried on the validation cut (ridge penalty per attribute, in users).
SHRINKAGES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
#: History half-weights tried (items of history at which history and profile weigh the same).
HISTORY_HALVES = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: Items revealed per validation user when choosing ``history_half``.
REVEALED = (1, 3, 10)
#: At most this many held-out users (a seeded subset) choose ``history_half``: one number of six.
HISTORY_USERS = 300


@dataclass(frozen=True)
class ProfileConfig(ModelConfig):
    """``shrinkage``: the ridge penalty (None: chosen on the validation cut); ``kinds``: the
    attribute kinds to use (empty: every kind that helps on validation); ``history_half``: the
    history size at which history weighs as much as the profile (None: chosen on validation);
    ``smoothing``: how many users' worth of global popularity smooths each co-choice rate;
    ``validation_users``: the share of users with attributes held out whole to choose."""

    shrinkage: Annotated[float, Positive] | None = None
    kinds: tuple[str, ...] = ()
    history_half: Annotated[float, Positive] | None = None
    smoothing: Annotated[float, Positive] = 5.0
    validation_users: Annotated[float, Range(0.05, 0.5)] = 0.2
    max_validation_users: Annotated[int, AtLeastOne] = 1000


@register("profile", fit_cost=FitCost(nnz=0.3, fixed=0.2), default_rank=9, hybrid_rank=11)
class Profile(ScoredRecommender, ScoresProfiles):
    Config = ProfileConfig
    config: ProfileConfig

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {
        "mean": ("items",), "weights": ("attributes", "items"), "attribute_mean": ("attributes",),
        "used": ("attributes",), "history_half": (None,),
    }

    @classmethod
    def applies_to(cls, snapshot: GraphSnapshot) -> bool:
        """Only where some user with interactions links to an Attribute node."""
        ua = snapshot.user_attributes
        if ua is None or ua.nnz == 0:
            return False
        return bool(((np.diff(ua.indptr) > 0) & (np.diff(snapshot.interactions.indptr) > 0)).any())

    def manifest_entry(self) -> dict[str, Any] | None:
        return dict(getattr(self, "report", {})) or None

    # -- fit --------------------------------------------------------------------------------
    def _prepare(self, snapshot: GraphSnapshot) -> None:
        y = sp.csr_matrix(snapshot.interactions, dtype=np.float64, copy=True)
        y.data[:] = 1.0
        self._y = y
        self._y_csc = sp.csc_matrix(y)
        x = sp.csr_matrix(snapshot.user_attributes, dtype=np.float64)
        self._x = x
        self._x_csc = sp.csc_matrix(x)
        self._audience = np.asarray(y.sum(axis=0)).ravel()
        self._rate = self._audience / max(1, len(snapshot.users))
        kinds = sorted(set(snapshot.attribute_kinds))
        self._kind_of = np.array([kinds.index(k) for k in snapshot.attribute_kinds], dtype=np.int64)
        self._n_kinds = len(kinds)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        kinds = np.array(snapshot.attribute_kinds, dtype=object)
        wanted = set(cfg.kinds) if cfg.kinds else set(kinds.tolist())
        usable = np.array([k in wanted for k in kinds.tolist()], dtype=bool)
        report: dict[str, Any] = {}
        shrinkage, history_half = cfg.shrinkage, cfg.history_half
        heldout = self._validation_users(snapshot)
        if len(heldout) and (shrinkage is None or not cfg.kinds or history_half is None):
            train = np.setdiff1d(np.flatnonzero(np.diff(self._y.indptr) > 0), heldout)
            shrinkage, usable, report = self._choose(train, heldout, usable, shrinkage, not cfg.kinds)
            if history_half is None:
                history_half, report["history"] = self._choose_history(train, heldout, usable, shrinkage)
        self.report = report
        shrinkage = SHRINKAGES[3] if shrinkage is None else shrinkage
        history_half = HISTORY_HALVES[2] if history_half is None else history_half
        train = self._profiled(np.arange(len(snapshot.users)))
        self._mean, self._weights, self._attribute_mean = ridge(self._x[train], self._y[train], usable, shrinkage)
        self._used = usable.astype(np.float64)
        self._history_half = np.array([history_half], dtype=np.float64)
        self._derive()

    def _profiled(self, users: np.ndarray) -> np.ndarray:
        """Those of ``users`` with attributes and interactions: the rows the regression learns from."""
        x, y = self._x, self._y
        return users[(np.diff(x.indptr)[users] > 0) & (np.diff(y.indptr)[users] > 0)]

    def _validation_users(self, snapshot: GraphSnapshot) -> np.ndarray:
        """Users with attributes and at least two items, a ``validation_users`` share of them
        (seeded), held out whole; none when fewer than 20 users qualify."""
        both = np.flatnonzero((np.diff(self._x.indptr) > 0) & (np.diff(self._y.indptr) > 1))
        if len(both) < 20:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng(self.config.seed)
        n = min(max(1, round(len(both) * self.config.validation_users)), self.config.max_validation_users)
        return np.sort(rng.choice(both, size=n, replace=False))

    def _choose(self, train: np.ndarray, heldout: np.ndarray, usable: np.ndarray, fixed: float | None,
                drop_kinds: bool) -> tuple[float, np.ndarray, dict[str, Any]]:
        """The shrinkage and the kinds with the best NDCG@10 for the held-out users from their
        attributes alone (backward elimination over kinds: a kind stays only if dropping it hurts)."""
        x, y = self._x, self._y
        targets = wanted([y.indices[y.indptr[u]:y.indptr[u + 1]] for u in heldout.tolist()], y.shape[1])
        grid = SHRINKAGES if fixed is None else (fixed,)

        rows = self._profiled(train)
        x_train, y_train, x_held = x[rows], y[rows], x[heldout]

        def best(mask: np.ndarray) -> tuple[float, float]:
            scores = [(mean_ndcg(p, targets), lam) for lam, p in zip(grid, ridge_predictions(
                x_train, y_train, x_held, mask, grid), strict=True)]
            value, lam = max(scores, key=lambda t: (t[0], -t[1]))
            return value, lam

        value, lam = best(usable)
        names = np.array(self._snap().attribute_kinds, dtype=object)
        kinds = sorted({str(names[a]) for a in np.flatnonzero(usable).tolist()})
        while drop_kinds and kinds:
            trials = []
            for k in kinds:
                mask = usable & (names != k)
                trials.append((*best(mask), k, mask))
            top = max(trials, key=lambda t: t[0])
            if top[0] <= value:
                break
            value, lam, usable = top[0], top[1], top[3]
            kinds.remove(top[2])
        popularity = mean_ndcg(np.tile(np.asarray(y[train].sum(axis=0)).ravel(), (len(heldout), 1)), targets)
        report = {"validation_users": len(heldout), "kinds": kinds, "shrinkage": lam,
                  "ndcg_at_10": round(value, 5), "global_popularity_ndcg_at_10": round(popularity, 5)}
        return lam, usable, report

    def _choose_history(self, train: np.ndarray, heldout: np.ndarray, usable: np.ndarray,
                        shrinkage: float) -> tuple[float, dict[str, Any]]:
        """``history_half`` with the best mean NDCG@10 when 1, 3 and 10 items of each held-out
        user (at most ``HISTORY_USERS`` of them) are revealed (the rest are the targets)."""
        x, y = self._x, self._y
        rows = self._profiled(train)
        mean, weights, xbar = ridge(x[rows], y[rows], usable, shrinkage)
        y_train = y[train]
        y_train_csc = sp.csc_matrix(y_train)
        audience = np.asarray(y_train.sum(axis=0)).ravel()
        rate = audience / max(1, len(train))
        rng = np.random.default_rng(self.config.seed + 1)
        if len(heldout) > HISTORY_USERS:
            heldout = np.sort(rng.choice(heldout, size=HISTORY_USERS, replace=False))
        totals = np.zeros(len(HISTORY_HALVES))
        counted = 0
        for n in REVEALED:
            profiles, histories, targets = [], [], []
            for u in heldout.tolist():
                mine = y.indices[y.indptr[u]:y.indptr[u + 1]]
                if len(mine) <= n:
                    continue
                shown = rng.permutation(mine)
                revealed, rest = np.sort(shown[:n]), np.sort(shown[n:])
                attrs = x.indices[x.indptr[u]:x.indptr[u + 1]]
                profiles.append(profile_scores(attrs, mean, weights, xbar, usable, self._kind_of, self._n_kinds))
                histories.append(history_scores(revealed, y_train, y_train_csc, audience, rate,
                                                 self.config.smoothing))
                targets.append(rest)
            if not targets:
                continue
            p, h = np.array(profiles), np.array(histories)
            for g, half in enumerate(HISTORY_HALVES):
                alpha = n / (n + half)
                totals[g] += mean_ndcg((1 - alpha) * p + alpha * h, wanted(targets, h.shape[1]))
            counted += 1
        if counted == 0:
            return HISTORY_HALVES[2], {}
        g = int(np.argmax(totals))
        return HISTORY_HALVES[g], {"history_half": HISTORY_HALVES[g], "revealed": list(REVEALED),
                                   "ndcg_at_10": round(float(totals[g] / counted), 5)}

    def _derive(self) -> None:
        """Per-kind mean shares (what a kind you did not give counts as)."""
        offsets = np.zeros((self._n_kinds, self._weights.shape[1]))
        for k in range(self._n_kinds):
            cols = np.flatnonzero((self._kind_of == k) & (self._used > 0))
            if len(cols):
                offsets[k] = self._attribute_mean[cols] @ self._weights[cols]
        self._offsets = offsets

    # -- persistence ------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {"mean": self._mean, "weights": self._weights, "attribute_mean": self._attribute_mean,
                "used": self._used, "history_half": self._history_half}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._mean, self._weights = arrays["mean"], arrays["weights"]
        self._attribute_mean, self._used = arrays["attribute_mean"], arrays["used"]
        self._history_half = arrays["history_half"]
        self._derive()

    # -- scoring ----------------------------------------------------------------------------
    def _known_attributes(self, attrs: np.ndarray) -> np.ndarray:
        return attrs[self._used[attrs] > 0] if len(attrs) else attrs

    def _parts(self, attrs: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(profile scores, history scores, α) for attribute and item indices; None: nothing known."""
        attrs = self._known_attributes(attrs)
        if len(attrs) == 0 and len(items) == 0:
            return None
        profile = profile_scores(attrs, self._mean, self._weights, self._attribute_mean, self._used,
                                  self._kind_of, self._n_kinds, self._offsets)
        if len(items) == 0:
            return profile, np.zeros_like(profile), 0.0
        history = history_scores(items, self._y, self._y_csc, self._audience, self._rate, self.config.smoothing)
        n = len(items)
        return profile, history, n / (n + float(self._history_half[0]))

    def _user_parts(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._x, self._y
        return x.indices[x.indptr[u]:x.indptr[u + 1]], y.indices[y.indptr[u]:y.indptr[u + 1]]

    def _scores(self, u: int) -> np.ndarray | None:
        parts = self._parts(*self._user_parts(u))
        return None if parts is None else (1 - parts[2]) * parts[0] + parts[2] * parts[1]

    def _resolve(self, attributes: Collection[str], history: Mapping[str, float] | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        snap = self._snap()
        attrs = sorted({a for a in map(snap.attributes.get, attributes) if a is not None})
        items = sorted({j for j in (snap.items.get(x) for x, w in (history or {}).items() if w > 0) if j is not None})
        return np.asarray(attrs, dtype=np.int64), np.asarray(items, dtype=np.int64)

    def score_profile(self, attributes: Collection[str], history: Mapping[str, float] | None) -> np.ndarray | None:
        parts = self._parts(*self._resolve(attributes, history))
        if parts is None:
            return None
        return (1 - parts[2]) * parts[0] + parts[2] * parts[1]

    # -- explaining -------------------------------------------------------------------------
    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        attrs, items = self._user_parts(u)
        return self._reasons(self._paths.user(u), u, attrs, items, i, limit)

    def explain_profile(self, user_id: str, attributes: Collection[str], history: Mapping[str, float] | None,
                        item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        snap = self._snap()
        attrs, items = self._resolve(attributes, history)
        u = snap.users.get(user_id)
        node = self._paths.user(u) if u is not None else PathNode(Label.USER, user_id)
        parts = self._parts(attrs, items)
        out = []
        for item_id in item_ids:
            i = snap.items.get(item_id)
            if parts is None or i is None:
                out.append(TopReasons())
                continue
            score = (1 - parts[2]) * parts[0][i] + parts[2] * parts[1][i]
            out.append(self._reasons(node, u, attrs, items, i, limit) if score > 0 else TopReasons())
        return out

    def _reasons(self, node: PathNode, u: int | None, attrs: np.ndarray, items: np.ndarray, i: int,
                 limit: int | None) -> TopReasons:
        """Every share of the score as a path; shares without a witness join the base reason."""
        snap, paths = self._snap(), self._paths
        attrs = self._known_attributes(attrs)
        n = len(items)
        alpha = n / (n + float(self._history_half[0])) if n else 0.0
        present = np.unique(self._kind_of[attrs]) if len(attrs) else np.zeros(0, dtype=np.int64)
        base = (1 - alpha) * (self._mean[i] - self._offsets[present, i].sum())
        title = snap.title(i)
        shared = self._shared(attrs)
        shares: list[tuple[float, Any]] = []
        unwitnessed: list[str] = []
        for a in attrs.tolist():
            share = (1 - alpha) * float(self._weights[a, i])
            v = self._witness(self._x_csc, a, i, u, shared)
            if v is None:
                base += share
                unwitnessed.append(snap.attribute_names[a])
                continue
            also = [snap.attribute_names[b] for b in attrs.tolist() if b != a and self._x[v, b] > 0]
            who = paths.user(v).name or snap.users.ids[v]
            how = f"more often than most, like {who}" if share >= 0 else f"less often than most (though {who} did)"
            text = (f"{_people(snap.attribute_kinds[a], snap.attribute_names[a])} choose {title} {how}"
                    + (f", who shares your {', '.join(also)} too" if also else ""))
            shares.append((share, ("peer", a, v, text)))
        s = self.config.smoothing
        for j in items.tolist():
            scale = alpha / n / (self._audience[j] + s)
            base += scale * s * self._rate[i]
            co = self._witness(self._y_csc, j, i, u, shared)
            if co is None:
                continue
            share = scale * float(self._co_count(j, i))
            text = (f"{int(self._co_count(j, i))} people who chose {snap.title(j)}, which you chose, also chose "
                    f"{title}, like {paths.user(co).name or snap.users.ids[co]}")
            shares.append((share, ("co", j, co, text)))
        base_text = f"{int(self._audience[i])} people chose {title}"
        if unwitnessed:
            base_text += f"; with {', '.join(unwitnessed)} taken into account (nobody with them chose it yet)"
        shares.append((float(base), ("base", i, None, base_text)))
        values = np.array([x for x, _ in shares])
        shown, rest = ranked_shares(values, limit)
        reasons = [self._path(node, shares[k][1], i, float(values[k])) for k in shown.tolist()]
        omitted = values[rest]
        return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))

    def _path(self, node: PathNode, what: tuple[str, int, int | None, str], i: int, share: float) -> Reason:
        """One share as its path: the item's audience, a peer with the attribute, or a co-user."""
        kind, a, v, text = what
        paths = self._paths
        if kind == "base" or v is None:
            return paths.popular(i, share, text)
        if kind == "peer":
            return paths.peer_group(node, a, v, i, share, text)
        return paths.reason(CO_INTERACTION, (node, paths.item(a), paths.user(v), paths.item(i)), share, text)

    def _shared(self, attrs: np.ndarray) -> np.ndarray:
        """How many of these attributes each user has (to pick the most similar witness)."""
        if len(attrs) == 0:
            return np.zeros(self._x.shape[0])
        return np.asarray(self._x_csc[:, attrs].sum(axis=1)).ravel()

    def _witness(self, m: sp.csc_matrix, col: int, i: int, u: int | None, shared: np.ndarray) -> int | None:
        """A user who has column ``col`` of ``m`` (an attribute, an item) and chose item ``i``,
        not ``u``; the one sharing most of the attributes, then the first."""
        a = m.indices[m.indptr[col]:m.indptr[col + 1]]
        b = self._y_csc.indices[self._y_csc.indptr[i]:self._y_csc.indptr[i + 1]]
        both = np.intersect1d(a, b, assume_unique=True)
        if u is not None:
            both = both[both != u]
        if len(both) == 0:
            return None
        return int(both[np.argmax(shared[both])])

    def _co_count(self, j: int, i: int) -> int:
        c = self._y_csc
        return len(np.intersect1d(c.indices[c.indptr[j]:c.indptr[j + 1]], c.indices[c.indptr[i]:c.indptr[i + 1]],
                                  assume_unique=True))


def _people(kind: str, name: str) -> str:
    """``people aged 25-34``, ``people who work as engineer``, … for an attribute's name."""
    value = name.split(" ", 1)[1] if " " in name else name
    return {"age": f"people aged {value}", "occupation": f"people who work as {value}",
            "gender": f"people of gender {value}", "sex": f"people of sex {value}",
            "region": f"people from region {value}"}.get(kind, f"people with {name}")
