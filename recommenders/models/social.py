"""Social: trust-aware CF over FOLLOWS, shrunk towards popularity where trust is thin.

Trust follows the direction of FOLLOWS. You trust a user you follow with
``a(u, f) = follow weight · (floor + (1 − floor) · taste(u, f))``, taste being the cosine of
your and f's interactions, and ``t`` is ``a`` normalised over everyone you follow. Trust
propagates one hop further: ``a2(u, g) = Σ_f t(u, f) · t(f, g) · (floor + (1 − floor) ·
taste(u, g))`` for g ≠ you (the ``max_two_hop`` users with the most propagated trust).

Scores mix three distributions over items:

- direct ``D(u, i) = Σ_f d(u, f) · P(f → i)``, with d = a normalised over the followed users
  who have a history and P(f → i) f's normalised interaction weights;
- two-hop ``T(u, i) = Σ_g e(u, g) · P(g → i)``, with e = a2 normalised;
- popularity ``Q(i)`` = the item's share of all audiences;

``score(u, i) = (1 − γ_u) · ((1 − w) · D + w · T) + γ_u · Q`` with ``w = two_hop`` (when only
one social part exists it takes all) and ``γ_u = κ / (κ + n_u)``: ``n_u`` counts the followed
users with a history plus ``w`` × the friends-of-friends with one, κ is ``shrinkage``. A user
who trusts few people leans on popularity; one with no trusted user at all is cold (the
fallback chain serves them). ``two_hop`` and ``shrinkage`` are chosen inside ``fit`` on a
seeded validation cut of the snapshot unless they are set (``kgrec train`` can tune them).

The score is a sum over paths, so explanations are exact: one reason per friend who chose
the item (u→f→i), one per friend-of-friend path (u→f→g→i; g's share split over the friends f
it is reached through in proportion to t(u, f)·t(f, g)) and the popularity share (the item).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason, TopReasons, Tunable
from kgrec.recommenders.config import AtLeastOne, Fraction, ModelConfig, NonNegative, Range
from kgrec.recommenders.evaluation.ranking_metrics import block_ndcg
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.models.sparse_rows import (
    RowEntries,
    csr_restore,
    csr_state,
    interaction_weights,
    keep_top_per_row,
    ranked_shares,
    row_normalise,
    row_values,
    weighted_row_sum,
)
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

if TYPE_CHECKING:
    import optuna

#: What ``fit`` tries on its validation cut when ``two_hop`` / ``shrinkage`` are not set.
TWO_HOP_GRID = (0.0, 0.25, 0.5, 0.75)
SHRINKAGE_GRID = (0.0, 1.0, 4.0, 16.0, 64.0, math.inf)
#: Validation users scored per grid point (a seeded sample above that), in dense blocks.
VALIDATION_USERS = 500
BLOCK = 250
K = 10


@dataclass(frozen=True)
class SocialConfig(ModelConfig):
    """``trust_floor``: trust in a followed user whose taste shares nothing with yours (0.1
    beat 0.5 on a Last.fm 2K validation cut); ``two_hop`` (w) and ``shrinkage`` (κ): see the
    module docstring, None = chosen on a validation cut inside ``fit``; ``max_two_hop``: the
    friends-of-friends kept per user."""

    trust_floor: Annotated[float, Fraction] = 0.1
    two_hop: Annotated[float, Fraction] | None = None
    shrinkage: Annotated[float, NonNegative] | None = None
    max_two_hop: Annotated[int, AtLeastOne] = 200
    interaction_weighting: Literal["binary", "log", "raw"] = "binary"
    validation_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.2


@dataclass(frozen=True)
class Trust:
    """The trust matrices of one snapshot (users × users, CSR, sorted indices)."""

    step: sp.csr_matrix  #: t: trust normalised over everyone followed (what propagates)
    direct: sp.csr_matrix  #: d: trust normalised over followed users with a history
    two_hop: sp.csr_matrix  #: e: propagated trust, normalised
    taste: sp.csr_matrix  #: taste(u, f) on follow edges (+1e-12, so zeros stay stored)

    def state(self) -> dict[str, np.ndarray]:
        return {**csr_state("step", self.step), **csr_state("direct", self.direct),
                **csr_state("two_hop", self.two_hop), **csr_state("taste", self.taste)}

    @classmethod
    def restore(cls, a: dict[str, np.ndarray]) -> Trust:
        return cls(*(csr_restore(k, a) for k in ("step", "direct", "two_hop", "taste")))


def pair_cosine(x: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Cosine of rows ``rows[k]`` and ``cols[k]`` of ``x`` for every k (chunked products)."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    out = np.zeros(len(rows))
    for s in range(0, len(rows), chunk):
        r, c = rows[s : s + chunk], cols[s : s + chunk]
        dots = np.asarray(x[r].multiply(x[c]).sum(axis=1)).ravel()
        denom = norms[r] * norms[c]
        out[s : s + chunk] = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    return out


def _csr(vals: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((vals, (rows, cols)), shape=shape)
    m.sort_indices()
    return m


def build_trust(x: sp.csr_matrix, follows: sp.csr_matrix, floor: float, max_two_hop: int) -> Trust:
    """Direct and two-hop trust from the follow graph and the interaction matrix ``x``."""
    n = x.shape[0]
    has_history = np.diff(x.indptr) > 0
    f = sp.coo_matrix(follows)
    taste = pair_cosine(x, f.row, f.col)
    trust = f.data * (floor + (1 - floor) * taste)
    step = row_normalise(_csr(trust, f.row, f.col, (n, n)))
    voters = has_history[f.col]
    direct = row_normalise(_csr(trust[voters], f.row[voters], f.col[voters], (n, n)))
    reach = sp.coo_matrix(step @ step)
    ok = (reach.row != reach.col) & has_history[reach.col] & (reach.data > 0)
    reach = sp.coo_matrix(keep_top_per_row(_csr(reach.data[ok], reach.row[ok], reach.col[ok], (n, n)), max_two_hop))
    taste2 = pair_cosine(x, reach.row, reach.col)
    two_hop = row_normalise(_csr(reach.data * (floor + (1 - floor) * taste2), reach.row, reach.col, (n, n)))
    for m in (step, direct, two_hop):
        m.eliminate_zeros()
        m.sort_indices()
    return Trust(step, direct, two_hop, _csr(taste + 1e-12, f.row, f.col, (n, n)))


def mixing(trust: Trust, users: np.ndarray, two_hop: float, shrinkage: float) -> tuple[np.ndarray, ...]:
    """Per user: the weight of the direct part, of the two-hop part and of popularity (γ),
    and whether the user has any trusted user with a history."""
    n_direct = np.diff(trust.direct.indptr)[users].astype(np.float64)
    n_two = np.diff(trust.two_hop.indptr)[users].astype(np.float64) if two_hop > 0 else np.zeros(len(users))
    has_d, has_t = n_direct > 0, n_two > 0
    w_t = np.where(has_d & has_t, two_hop, np.where(has_t, 1.0, 0.0))
    size = n_direct + two_hop * n_two
    gamma = np.ones(len(users)) if math.isinf(shrinkage) else shrinkage / np.maximum(shrinkage + size, 1e-300)
    return (1 - gamma) * (1 - w_t), (1 - gamma) * w_t, gamma, has_d | has_t


@register("social", fit_cost=FitCost(follows=1.0, fixed=0.02), default_rank=9, hybrid_rank=5)
class Social(ScoredRecommender, Tunable):
    Config = SocialConfig
    config: SocialConfig

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """The trust floor, the two-hop weight and the shrinkage (set, they skip ``fit``'s own grid)."""
        return {
            "trust_floor": trial.suggest_float("trust_floor", 0.0, 1.0),
            "two_hop": trial.suggest_float("two_hop", 0.0, 1.0),
            "shrinkage": trial.suggest_float("shrinkage", 0.1, 1000.0, log=True),
        }

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        if not 0 <= cfg.trust_floor <= 1:
            raise ValueError("trust_floor must be in [0, 1]")
        if cfg.two_hop is not None and not 0 <= cfg.two_hop <= 1:
            raise ValueError("two_hop must be in [0, 1]")
        if cfg.shrinkage is not None and not cfg.shrinkage >= 0:
            raise ValueError("shrinkage must be >= 0")
        if cfg.max_two_hop < 1:
            raise ValueError("max_two_hop must be at least 1")
        if not 0 < cfg.validation_fraction < 1:
            raise ValueError("validation_fraction must be in (0, 1)")
        self._x = interaction_weights(snapshot, cfg.interaction_weighting)
        self._p_ui = row_normalise(self._x)
        self._audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr)
        self._popularity = self._audience / max(float(self._audience.sum()), 1.0)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        cfg = self.config
        self.validation: dict[str, float] = {}
        two_hop, shrinkage = cfg.two_hop, cfg.shrinkage
        if (two_hop is None or shrinkage is None) and snapshot.follows.nnz:
            two_hop, shrinkage = self._choose(snapshot)
        self._chosen = (0.0 if two_hop is None else two_hop, 0.0 if shrinkage is None else shrinkage)
        self._trust = build_trust(self._x, snapshot.follows, cfg.trust_floor, cfg.max_two_hop)

    @property
    def chosen(self) -> dict[str, float]:
        """The two-hop weight and shrinkage in use (set, or chosen on validation)."""
        return {"two_hop": self._chosen[0], "shrinkage": self._chosen[1]}

    def _choose(self, snapshot: GraphSnapshot) -> tuple[float, float]:
        """The grid point with the best NDCG@10 on a seeded validation cut of ``snapshot``
        (users without trusted users count as empty lists, as in evaluation)."""
        from kgrec.recommenders.evaluation.splits import random_holdout

        cfg = self.config
        cut = random_holdout(snapshot, fraction=cfg.validation_fraction, seed=cfg.seed, min_interactions=5)
        users = np.asarray(cut.users, dtype=np.int64)
        if len(users) > VALIDATION_USERS:
            users = np.sort(np.random.default_rng(cfg.seed).choice(users, VALIDATION_USERS, replace=False))
        grid = [(w, s) for w in ((cfg.two_hop,) if cfg.two_hop is not None else TWO_HOP_GRID)
                for s in ((cfg.shrinkage,) if cfg.shrinkage is not None else SHRINKAGE_GRID)]
        if len(users) == 0:
            return grid[0]
        x = interaction_weights(cut.train, cfg.interaction_weighting)
        trust = build_trust(x, cut.train.follows, cfg.trust_floor, cfg.max_two_hop)
        p_ui = row_normalise(x)
        audience = np.diff(sp.csc_matrix(cut.train.interactions).indptr).astype(np.float64)
        pop = (audience / max(audience.sum(), 1.0)).astype(np.float32)
        totals = np.zeros(len(grid))
        for s in range(0, len(users), BLOCK):
            block = users[s : s + BLOCK]
            d = (trust.direct[block] @ p_ui).toarray().astype(np.float32)
            t = (trust.two_hop[block] @ p_ui).toarray().astype(np.float32)
            seen = x[block].toarray() > 0
            relevant = np.zeros_like(seen)
            for r, u in enumerate(block.tolist()):
                relevant[r, cut.test[u]] = True
            for g, (w, kappa) in enumerate(grid):
                a_d, a_t, gamma, _ = mixing(trust, block, w, kappa)
                scores = a_d[:, None].astype(np.float32) * d
                scores += a_t[:, None].astype(np.float32) * t
                scores += gamma[:, None].astype(np.float32) * pop[None, :]
                scores[seen] = -np.inf
                totals[g] += block_ndcg(scores, relevant, K).sum()
        means = totals / len(users)
        self.validation = {f"two_hop={w},shrinkage={s}": float(m) for (w, s), m in zip(grid, means, strict=True)}
        return grid[int(np.argmax(means))]

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {
        "step": ("users", "users"), "direct": ("users", "users"), "two_hop": ("users", "users"),
        "taste": ("users", "users"), "chosen": (None,),
    }
    NAN_OK: ClassVar[frozenset[str]] = frozenset({"chosen"})  # an infinite shrinkage is "no shrinkage"

    def _state(self) -> dict[str, np.ndarray]:
        return {**self._trust.state(), "chosen": np.asarray(self._chosen, dtype=np.float64)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._trust = Trust.restore(arrays)
        self._chosen = (float(arrays["chosen"][0]), float(arrays["chosen"][1]))
        self.validation = {}

    # -- scoring ------------------------------------------------------------------------------
    def _row(self, m: sp.csr_matrix, u: int) -> tuple[np.ndarray, np.ndarray]:
        return m.indices[m.indptr[u] : m.indptr[u + 1]], m.data[m.indptr[u] : m.indptr[u + 1]]

    def _mix(self, u: int) -> tuple[float, float, float, bool]:
        a_d, a_t, gamma, warm = mixing(self._trust, np.array([u]), *self._chosen)
        return float(a_d[0]), float(a_t[0]), float(gamma[0]), bool(warm[0])

    def _scores(self, u: int) -> np.ndarray | None:
        a_d, a_t, gamma, warm = self._mix(u)
        if not warm:
            return None
        scores = gamma * self._popularity
        if a_d > 0:
            friends, trust = self._row(self._trust.direct, u)
            scores = scores + weighted_row_sum(self._p_ui, friends, trust * a_d)
        if a_t > 0:
            others, trust = self._row(self._trust.two_hop, u)
            scores = scores + weighted_row_sum(self._p_ui, others, trust * a_t)
        return scores

    # -- explanations -------------------------------------------------------------------------
    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _two_hop_paths(self, u: int, i: int, a_t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every path u→f→g→i with its share: (f, g, share) arrays."""
        others, trust = self._row(self._trust.two_hop, u)
        into_i = row_values(self._p_ui, others, i)
        reach = into_i > 0
        others, share_g = others[reach], a_t * trust[reach] * into_i[reach]
        friends, t_uf = self._row(self._trust.step, u)
        entries = RowEntries.of(self._trust.step, friends)  # t(f, g) for each friend f
        hit = np.isin(entries.cols, others)
        f_pos, g, t_fg = entries.owner[hit], entries.cols[hit], entries.vals[hit]
        weight = t_uf[f_pos] * t_fg
        g_pos = np.searchsorted(others, g)
        per_g = np.bincount(g_pos, weights=weight, minlength=len(others))
        return friends[f_pos], g, share_g[g_pos] * weight / per_g[g_pos]

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        a_d, a_t, gamma, _ = self._mix(u)
        friends, trust = self._row(self._trust.direct, u)
        direct = a_d * trust * row_values(self._p_ui, friends, i) if a_d > 0 else np.zeros(0)
        keep = direct > 0
        friends, direct = friends[keep], direct[keep]
        if a_t > 0:
            via, others, two = self._two_hop_paths(u, i, a_t)
        else:
            via, others, two = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        pop = np.array([gamma * self._popularity[i]]) if gamma * self._popularity[i] > 0 else np.zeros(0)
        shares = np.concatenate([direct, two, pop])
        shown, rest = ranked_shares(shares, limit)
        reasons = [self._reason(u, i, int(k), friends, via, others, shares) for k in shown.tolist()]
        omitted = shares[rest]
        return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))

    def _reason(self, u: int, i: int, k: int, friends: np.ndarray, via: np.ndarray, others: np.ndarray,
                shares: np.ndarray) -> Reason:
        snap, p = self._snap(), self._paths
        share, title = float(shares[k]), snap.title(i)
        if k < len(friends):
            f = int(friends[k])
            taste = float(row_values(self._trust.taste, np.array([u]), f)[0])
            text = f"You follow {self._name(f)} (taste similarity {taste:.2f}), who chose {title}"
            return p.friend(u, f, i, share, text)
        k -= len(friends)
        if k < len(via):
            f, g = int(via[k]), int(others[k])
            text = f"You follow {self._name(f)}, who follows {self._name(g)}, who chose {title}"
            return p.friend_of_friend(u, f, g, i, share, text)
        n_trusted = len(self._row(self._trust.direct, u)[0])
        text = (f"{title} is popular ({int(self._audience[i])} people chose it); you trust {n_trusted} "
                "people with a history, so part of the score leans on popularity")
        return p.popular(i, share, text)

    def _name(self, v: int) -> str:
        return self._paths.user(v).name or self._snap().users.ids[v]
