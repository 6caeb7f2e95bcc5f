"""Rating prediction: Bayesian SVD++ with biases (``svdpp``) and its trust-aware variant (``trustsvd``).

Both predict how a user would rate an item on the graph's own scale (clipped to it) and split
each prediction into its parts — global mean, user bias, item bias, the user's taste against the
item's, one share per co-rated item and per trusted user — which add up to it exactly
(``recommenders.models.rating_factors``). They fit with myFM's Gibbs sampler
(``recommenders.models._bayesian_fm``: Bayesian SVD++ "flipped" with item tags) and serve plain
numpy arrays. What they learn from is the graph's explicit ratings
(``recommenders.evaluation.explicit_ratings``: the ``rating`` property, or weights on a rating
scale); ``applies_to`` is False without them, so default training leaves them out.

Chosen inside ``fit`` on a seeded holdout of the graph's own ratings: the Gibbs chain length, and
for ``trustsvd`` (``trust="auto"``) whether the users a user follows add their taste factors to
theirs (SocialMF-style, the TrustSVD family) — kept only if it does not make the validation RMSE
worse. ``trust="on"`` forces it. ``svdpp`` is the same model without trust, so "does trust help"
is the comparison of the two, and ``trustsvd`` reuses ``svdpp``'s validation chain when both are
fitted on one snapshot. Not ``Tunable``: the tuner's objective is ranking NDCG, and these models
choose their own options on rating error.

They serve no lists (``recommends = False``): a top-k by predicted rating is a poor ranking, so a
server leaves them out of every chain and the fallback order of the ranking models is unchanged.
A user or item without ratings (nor tags for an item, nor trusted users for a ``trustsvd`` user)
is unknown to them and gets the baseline: the global mean plus the bias that is known.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from kgrec.graph.array_files import map_arrays, save_arrays
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext, FitCost, PredictsRatings, Reason, Recommendation, Recommender
from kgrec.recommenders.config import AtLeastOne, ConfigError, ModelConfig, NonNegative, Range
from kgrec.recommenders.evaluation.explicit_ratings import explicit_ratings, has_explicit_ratings
from kgrec.recommenders.models import _bayesian_fm
from kgrec.recommenders.models.rating_factors import ARRAYS, RatingFactors
from kgrec.recommenders.models.rating_parts import ExplainsRatings, RatingExplanation, RatingPart
from kgrec.recommenders.models.scored import ARRAYS_DIR, MODEL_FORMAT, config_from_json, read_model_meta
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import check_arrays

KNOWN: dict[str, tuple[str | None, ...]] = {"known_users": ("users",), "known_items": ("items",)}


@dataclass(frozen=True)
class SVDppConfig(ModelConfig):
    """``rank``: factors per Gibbs sample; ``n_iter``: the chain length (None: chosen on a
    ``validation_fraction`` holdout of each user's ratings, every ``checkpoint`` iterations up to
    ``max_iter``, stopping after ``patience`` checkpoints without improvement); ``burn_in``: the
    share of the chain discarded; ``implicit``/``flipped``/``tags``: the SVD++ feature groups
    (items the user rated, users who rated the item, the item's tags); ``serve_dim``: the
    dimensions the posterior mean is served in."""

    rank: Annotated[int, AtLeastOne] = 10
    n_iter: Annotated[int, AtLeastOne] | None = None
    max_iter: Annotated[int, AtLeastOne] = 600
    checkpoint: Annotated[int, AtLeastOne] = 50
    patience: Annotated[int, AtLeastOne] = 2
    burn_in: Annotated[float, Range(0, 1, open_high=True)] = 0.25
    validation_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.15
    implicit: bool = True
    flipped: bool = True
    tags: bool = True
    serve_dim: Annotated[int, AtLeastOne] = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_iter < self.checkpoint:
            raise ConfigError(self.model_name, "max_iter", f"must be at least checkpoint ({self.checkpoint})")

    def options(self, trust: str = "off", trust_margin: float = 0.0) -> _bayesian_fm.FitOptions:
        return _bayesian_fm.FitOptions(
            rank=self.rank, n_iter=self.n_iter, max_iter=self.max_iter, checkpoint=self.checkpoint,
            patience=self.patience, burn_in=self.burn_in, implicit=self.implicit, flipped=self.flipped,
            tags=self.tags, trust=trust, validation_fraction=self.validation_fraction, trust_margin=trust_margin,
            serve_dim=self.serve_dim, seed=self.seed)


@dataclass(frozen=True)
class TrustSVDConfig(SVDppConfig):
    """``trust``: "auto" keeps trust only if it does not worsen validation RMSE by more than
    ``trust_margin``; "on" always uses it."""

    trust: Literal["auto", "on"] = "auto"
    trust_margin: Annotated[float, NonNegative] = 0.0


class RatingModel(Recommender, PredictsRatings, ExplainsRatings):
    """What ``svdpp`` and ``trustsvd`` share (see the module doc)."""

    Config: ClassVar[type[ModelConfig]] = SVDppConfig
    config: SVDppConfig
    recommends: ClassVar[bool] = False
    uses_trust: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.snapshot: GraphSnapshot | None = None
        self.factors: RatingFactors | None = None
        self.known_users = np.zeros(0, dtype=bool)
        self.known_items = np.zeros(0, dtype=bool)
        self.report: dict[str, Any] = {}

    @classmethod
    def applies_to(cls, snapshot: GraphSnapshot) -> bool:
        return has_explicit_ratings(snapshot) and (not cls.uses_trust or snapshot.follows.nnz > 0)

    # -- fitting ----------------------------------------------------------------------------
    def _options(self) -> _bayesian_fm.FitOptions:
        return self.config.options()

    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> RatingModel:
        ratings = explicit_ratings(snapshot)
        if ratings is None:
            raise ValueError(f"{self.name}: the graph has no explicit ratings (no rating property, and its "
                             "weights are not on a rating scale); it has nothing to learn")
        n_users, n_items = len(snapshot.users), len(snapshot.items)
        trust = snapshot.follows if self.uses_trust and snapshot.follows.nnz else None
        factors, report = _bayesian_fm.fit(ratings.user, ratings.item, ratings.rating, n_users, n_items,
                                           trust=trust, item_tags=snapshot.item_tags, opts=self._options(),
                                           known_curves=self._known_curves(snapshot, ctx))
        known_users = np.bincount(ratings.user, minlength=n_users) > 0
        if report.trust_used and trust is not None:
            known_users |= np.diff(factors.trust.indptr) > 0
        known_items = np.bincount(ratings.item, minlength=n_items) > 0
        if self.config.tags:
            known_items |= np.diff(snapshot.item_tags.indptr) > 0
        self.factors = _centred(factors, known_users, known_items)
        self.known_users, self.known_items, self.snapshot = known_users, known_items, snapshot
        self.report = {"ratings": len(ratings), "from": ratings.source, "scale": [ratings.low, ratings.high],
                       "n_iter": report.n_iter, "trust_used": report.trust_used,
                       "validation_rmse": report.validation,
                       "curves": {k: {str(i): v for i, v in c.items()} for k, c in report.curves.items()},
                       "serve_dim": report.serve_dim, "compress_rms": report.compress_rms,
                       "seconds": {k: round(v, 2) for k, v in report.seconds.items()}}
        return self

    def _known_curves(self, snapshot: GraphSnapshot, ctx: FitContext | None) -> dict[str, dict[int, float]] | None:
        return None

    @property
    def validation_rmse(self) -> float | None:
        """The validation RMSE of what was chosen (None when nothing was validated)."""
        values = self.report.get("validation_rmse") or {}
        return min(values.values()) if values else None

    def manifest_entry(self) -> dict[str, Any] | None:
        return {k: v for k, v in self.report.items() if k != "curves"}

    # -- serving ----------------------------------------------------------------------------
    def _fitted(self) -> tuple[GraphSnapshot, RatingFactors]:
        if self.snapshot is None or self.factors is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(snapshot) or load(dir, snapshot) first")
        return self.snapshot, self.factors

    def _indices(self, users: Sequence[str], items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays, −1 for an id the model does not know (no ratings to learn it from)."""
        snap, _ = self._fitted()
        u = np.fromiter((snap.users.index.get(x, -1) for x in users), dtype=np.int64, count=len(users))
        i = np.fromiter((snap.items.index.get(x, -1) for x in items), dtype=np.int64, count=len(items))
        u[u >= 0] = np.where(self.known_users[u[u >= 0]], u[u >= 0], -1)
        i[i >= 0] = np.where(self.known_items[i[i >= 0]], i[i >= 0], -1)
        return u, i

    def predict_ratings(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        if len(users) != len(items):
            raise ValueError(f"{len(users)} users for {len(items)} items: give one user per item")
        _, factors = self._fitted()
        return factors.predict(*self._indices(users, items))

    def user_scores(self, user_id: str) -> np.ndarray | None:
        """Every item's predicted rating for a known user (unknown items: the user's baseline),
        or None for a user the model does not know."""
        _, factors = self._fitted()
        u, _ = self._indices([user_id], [])
        if u[0] < 0:
            return None
        raw = np.where(self.known_items, factors.user_items_scores(int(u[0])),
                       factors.mu + factors.user_bias[u[0]])
        return np.clip(raw, factors.lo, factors.hi)

    def explain_ratings(self, user_id: str, item_ids: Sequence[str], limit: int = 3) -> list[RatingExplanation]:
        snap, factors = self._fitted()
        users, items = self._indices([user_id] * len(item_ids), list(item_ids))
        out = []
        for u, i, rating in zip(users.tolist(), items.tolist(), factors.predict(users, items).tolist(), strict=True):
            if u < 0 or i < 0:
                ub = float(factors.user_bias[u]) if u >= 0 else 0.0
                ib = float(factors.item_bias[i]) if i >= 0 else 0.0
                missing = " and ".join(w for w, k in (("user", u), ("item", i)) if k < 0)
                out.append(RatingExplanation(rating, factors.mu, ub, ib, clipped=rating - (factors.mu + ub + ib),
                                             baseline=f"unknown {missing}"))
                continue
            p = factors.parts(u, i)
            co, co_rest, co_n = _listed(p.co_rated_items, p.co_rated, limit, snap.items.ids, snap.item_titles)
            tr, tr_rest, tr_n = _listed(p.trusted_users, p.trusted, limit, snap.users.ids, None)
            out.append(RatingExplanation(rating, p.mu, p.user_bias, p.item_bias, p.own, co, co_rest, co_n, tr, tr_rest,
                                         tr_n, clipped=rating - p.total))
        return out

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        return []  # rating only (see the module doc)

    def explain(self, user_id: str, item_id: str) -> list[Reason]:
        return []  # it serves no list to explain; explain_ratings explains a rating

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        snap, factors = self._fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_arrays(d / ARRAYS_DIR, {**factors.state(), "known_users": self.known_users.astype(np.int8),
                                     "known_items": self.known_items.astype(np.int8)})
        meta = {"format": MODEL_FORMAT, "name": self.name, "config": asdict(self.config),
                "fingerprint": snap.fingerprint, "report": self.report}
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> RatingModel:
        d = Path(directory)
        meta = read_model_meta(d, cls.name, snapshot)
        model = cls(config_from_json(cls.Config, meta["config"]))
        arrays = map_arrays(d / ARRAYS_DIR)
        check_arrays(arrays, {**ARRAYS, **KNOWN}, snapshot, d / ARRAYS_DIR)
        model.factors = RatingFactors.restore(arrays)
        model.known_users = np.asarray(arrays["known_users"], dtype=bool)
        model.known_items = np.asarray(arrays["known_items"], dtype=bool)
        model.report = dict(meta.get("report") or {})
        model.snapshot = snapshot
        return model


@register("svdpp", fit_cost=FitCost(nnz=35.0, fixed=1.0), default_rank=20)
class SVDpp(RatingModel):
    """Bayesian SVD++ with biases, item tags and the users who rated each item ("flipped")."""

    Config = SVDppConfig


@register("trustsvd", fit_cost=FitCost(nnz=70.0, follows=2.0, fixed=1.0), default_rank=21)
class TrustSVD(RatingModel):
    """``svdpp`` plus the taste factors of the users each user follows, when validation keeps them."""

    Config = TrustSVDConfig
    config: TrustSVDConfig
    uses_trust: ClassVar[bool] = True

    def _options(self) -> _bayesian_fm.FitOptions:
        return self.config.options(self.config.trust, self.config.trust_margin)

    def _known_curves(self, snapshot: GraphSnapshot, ctx: FitContext | None) -> dict[str, dict[int, float]] | None:
        """``svdpp``'s validation chain, when it was fitted on this snapshot with the same options:
        it is this model's chain without trust (deterministic), so it is not run twice."""
        done = (ctx.fitted if ctx is not None else {}).get("svdpp")
        if not isinstance(done, SVDpp) or done.snapshot is None or done.snapshot.fingerprint != snapshot.fingerprint:
            return None
        if done.config.options() != self.config.options():
            return None
        curve = (done.report.get("curves") or {}).get("without_trust")
        return {"without_trust": {int(k): float(v) for k, v in curve.items()}} if curve else None


def _centred(f: RatingFactors, known_users: np.ndarray, known_items: np.ndarray) -> RatingFactors:
    """The same predictions with the known users' and items' mean biases moved into the global
    mean, so that a baseline (μ plus the known bias) is the average user's or item's."""
    mu_u = float(f.user_bias[known_users].mean()) if known_users.any() else 0.0
    mu_i = float(f.item_bias[known_items].mean()) if known_items.any() else 0.0
    return RatingFactors(f.mu + mu_u + mu_i, f.lo, f.hi, f.user_bias - mu_u, f.item_bias - mu_i, f.user_factors,
                         f.item_factors, f.implicit_factors, f.trust_factors, f.implicit, f.trust)


def _listed(index: np.ndarray, shares: np.ndarray, limit: int, ids: Sequence[str],
            titles: Sequence[str | None] | None) -> tuple[tuple[RatingPart, ...], float, int]:
    """The ``limit`` largest shares by size (ties by index), and the rest's sum and count."""
    order = np.lexsort((index, -np.abs(shares)))
    shown = order[: max(limit, 0)]
    parts = tuple(RatingPart(ids[int(index[k])], titles[int(index[k])] if titles is not None else None,
                             float(shares[k])) for k in shown)
    rest = order[len(shown):]
    return parts, float(shares[rest].sum()), len(rest)
