"""Hybrid: the other recommenders' candidates re-ranked by a learned model — or, when that
does not pay on validation, the best of them as it is.

Fitting has two stages, so nothing is chosen on the pairs it is judged on:

1. *Learn and choose.* On the validation cut (``recommenders.validation``: a seeded 20 % of
   each user's interactions held out, taggings of held-out pairs removed; the same cut the
   tuner uses), fit every component on the rest — or take the ones the tuner fitted there
   (``FitContext.cut_fitted``) — take each component's top ``candidates`` items for a sample
   of users, describe each (user, candidate) (``recommenders.hybrid_features``) and label it
   by whether it was held out. Each ranker of ``rankers`` (``recommenders.hybrid_ranker``:
   logistic regression, LightGBM LambdaRank) is scored out of fold against every component's
   own list; the winner serves if it beats the best component by ``margin``, else that
   component serves (``recommenders.hybrid_selection``; ``selection`` keeps the record).
2. *Serve.* Refit what serves on the whole snapshot — or take what ``fit_models`` has already
   fitted with the same config on the same snapshot (``FitContext.fitted``) — and rank.

``fit`` then ranks every known user once and keeps the head of each list
(``recommenders.hybrid.precomputed``). ``recommend`` serves from it when the answer cannot
differ from live scoring: no excluded item beyond the user's own (exclusions change the
components' candidate lists, so they are scored live) and enough items kept for ``k`` (and the
MMR pool). Otherwise it scores live. With ``mmr_lambda < 1`` the list is re-ranked greedily by
maximal marginal relevance over tag cosine, trading relevance for diversity.

The hybrid does not score all items (``ScoresAllItems``): it ranks only its components'
candidates, so a server asks it for lists (``recommend``) rather than for a score vector.
Its components are the configured ones that apply to the graph (``hybrid.parts``): ``geo``,
with its candidates and twelve geographic columns, only where items have coordinates.
``score_from_place`` ranks as if the user stood at a given point (the read path's ``at=``).

The score is not a sum over graph paths, so reasons are the own reasons of the (at most
three) components with the largest positive part of the score (``recommenders.hybrid_explain``),
each scaled to that part and marked ``evidence``; a served component explains alone.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np

from kgrec.graph.array_files import map_arrays, save_arrays
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import (
    FitContext,
    FitCost,
    Reason,
    Recommendation,
    Recommender,
    ScoresAllItems,
    ScoresFromPlace,
    TopReasons,
)
from kgrec.recommenders.config import AtLeastOne, ConfigError, ModelConfig, Positive, Range
from kgrec.recommenders.evaluation.validation_cut import validation_cut
from kgrec.recommenders.hybrid.features import FeatureSpace, Rows
from kgrec.recommenders.hybrid.geo_features import GEO, GeoFeatures
from kgrec.recommenders.hybrid.hybrid_reasons import Explainers, Ranked, explain_many
from kgrec.recommenders.hybrid.parts import applicable, component_shares, cut_choices, same_fit, scores_of, spread
from kgrec.recommenders.hybrid.precomputed import PRECOMPUTED, TOP_ARRAYS, PrecomputedLists, mmr
from kgrec.recommenders.hybrid.rankers import RANKERS, Ranker, ranker_class, restore_ranker
from kgrec.recommenders.hybrid.rating_feature import fit_rater, kept_flags, load_rater, optional_columns, save_rater
from kgrec.recommenders.hybrid.selection import Selection, select
from kgrec.recommenders.models.scored import ARRAYS_DIR, MODEL_FORMAT, config_from_json, read_model_meta
from kgrec.recommenders.recent_user import RecentUser
from kgrec.recommenders.registry import create, get, hybrid_components, register
from kgrec.recommenders.saved_arrays import check_arrays


@dataclass(frozen=True)
class HybridConfig(ModelConfig):
    """``components``: the models whose candidates are ranked (default: every model that
    declares a ``hybrid_rank``); ``component_configs``: Config overrides per component (what
    the tuner chose); ``rankers``: the learned rankers compared on validation; ``margin``: the
    relative lead on validation NDCG@10 a ranker needs over the best component to serve instead
    of it, and ``min_lead_z`` the standard errors of the paired per-user difference it must reach."""

    components: tuple[str, ...] = field(default_factory=hybrid_components)
    candidates: Annotated[int, AtLeastOne] = 50
    validation_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.2
    max_train_users: Annotated[int, AtLeastOne] = 2000
    regularisation: Annotated[float, Positive] = 1.0
    rankers: tuple[str, ...] = RANKERS
    margin: float = 0.01
    min_lead_z: float = 2.0
    mmr_lambda: Annotated[float, Range(0, 1)] = 1.0
    component_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [r for r in self.rankers if r not in RANKERS]
        if bad:
            raise ConfigError(self.model_name, "rankers", f"may name only {', '.join(RANKERS)} (got {bad})")
        if not self.components:
            raise ConfigError(self.model_name, "components", "must name at least one recommender")


# Not tuned itself: its fit is its components' fits plus ranking every user once.
@register("hybrid", fit_cost=FitCost(fixed=1.0), default_rank=0)
class Hybrid(Recommender, ScoresFromPlace):
    additive: ClassVar[bool] = False
    positive_only: ClassVar[bool] = False  # ``score_from_place``: ranker scores, any sign
    composes: ClassVar[bool] = True
    Config = HybridConfig
    config: HybridConfig

    def __init__(self, config: HybridConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.snapshot: GraphSnapshot | None = None
        self.components: dict[str, Recommender] = {}
        self.parts: tuple[str, ...] = ()  # the components that apply to the snapshot (``parts_for``)
        self.selection: Selection | None = None
        self.ranker: Ranker | None = None
        self.precomputed: PrecomputedLists | None = None
        self._flags = (False, False, False)  # time, rating and predicted-rating features
        self._rater: Recommender | None = None  # what predicts the ratings (``rating_feature``)
        self._last: RecentUser[Ranked] = RecentUser()
        self._last_explained: RecentUser[Ranked] = RecentUser()  # with the components' shares

    @classmethod
    def members(cls, config: ModelConfig) -> tuple[str, ...]:
        assert isinstance(config, HybridConfig)
        return config.components

    @classmethod
    def with_member_configs(cls, settings: Mapping[str, Any], chosen: Mapping[str, Mapping[str, Any]]
                            ) -> dict[str, Any]:
        return {"component_configs": dict(chosen), **settings}

    def manifest_entry(self) -> dict[str, Any] | None:
        """The validation choice: what serves and why (``recommenders.hybrid.selection``)."""
        return self.selection.to_json() if self.selection is not None else None

    # -- what serves ------------------------------------------------------------------------------
    @property
    def serving(self) -> list[str]:
        """The components scored when serving: all of them behind a ranker, else the one served."""
        sel = self.selection
        if sel is not None and sel.serve == "component" and sel.component is not None:
            return [sel.component]
        return list(self.parts)

    def feature_names(self, snapshot: GraphSnapshot | None = None) -> list[str]:
        parts = self.parts if snapshot is None else applicable(self.config.components, snapshot)
        return FeatureSpace.names_for(parts, *self._flags)

    def _prepare(self, snapshot: GraphSnapshot, saved: Mapping[str, np.ndarray] | None = None) -> None:
        self.snapshot = snapshot
        self._last.clear()
        self._last_explained.clear()
        self.parts = applicable(self.config.components, snapshot)
        self._features = FeatureSpace(snapshot, self.parts, *self._flags, rater=self._rater, saved=saved)

    def _rows(self, u: int, scores: list[np.ndarray | None], at: tuple[float, float] | None = None) -> Rows:
        """``FeatureSpace.rows``, the geographic columns from the fitted ``geo`` component."""
        if "geo" in self.parts and self._features.geo is None:
            self._features.with_geo(GeoFeatures(self.components["geo"]))
        return self._features.rows(u, scores, self.config.candidates, at)

    def _component_scores(self, u: int, exclude: np.ndarray, names: Sequence[str],
                          at: tuple[float, float] | None = None) -> list[np.ndarray | None]:
        return scores_of(self.components, names, self._snap().users.ids[u], exclude, at)

    # -- fitting --------------------------------------------------------------------------------
    def _component(self, name: str, chosen: Mapping[str, Any] | None = None) -> Recommender:
        if name == self.name:
            raise ValueError("the hybrid cannot contain itself")
        rec = create(name, **{**dict(self.config.component_configs.get(name, {})), **(chosen or {}),
                              "seed": self.config.seed})
        if not isinstance(rec, ScoresAllItems):
            raise ValueError(f"component {name!r} cannot be a hybrid component: it does not score all items")
        return rec

    def _fit_components(self, snapshot: GraphSnapshot, names: Sequence[str],
                        fitted: Mapping[str, Recommender] | None = None,
                        chosen: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Recommender]:
        """Each component fitted on ``snapshot`` (with the options in ``chosen``, if any); one in
        ``fitted`` is taken as it is when it has the config this hybrid would give it and was
        fitted on this very snapshot."""
        comps = {}
        for c in names:
            rec = self._component(c, (chosen or {}).get(c))
            done = (fitted or {}).get(c)
            comps[c] = done if done is not None and same_fit(done, rec, snapshot) else rec.fit(snapshot)
        return comps

    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> Hybrid:
        """Learn and choose on the validation cut, then serve from what is fitted on the
        whole ``snapshot``; ``ctx`` offers components already fitted on the snapshot and on
        the cut's training part (see ``_fit_components``)."""
        ctx = ctx or FitContext()
        for c in self.config.components:
            self._component(c)  # bad names and options fail before any work
        cut = validation_cut(snapshot, self.config.seed, self.config.validation_fraction)
        self._flags = FeatureSpace.available(cut.train)
        self._rater = fit_rater(cut.train, ctx.fitted, seed=self.config.seed) if self._flags[2] else None
        self._prepare(cut.train)
        chosen = cut_choices(ctx.fitted, self._component, self.parts, snapshot, self.config.validation_fraction)
        self.components = self._fit_components(cut.train, self.parts, ctx.cut_fitted, chosen)
        users = np.asarray(cut.users, dtype=np.int64)
        if len(users) > self.config.max_train_users:
            rng = np.random.default_rng(self.config.seed)
            users = np.sort(rng.choice(users, size=self.config.max_train_users, replace=False))
        rows, labels, cands, relevant = [], [], [], []
        lists: dict[str, list[np.ndarray]] = {c: [] for c in self.parts}
        for u in users:
            scores = self._component_scores(int(u), cut.train.user_items(int(u)), self.parts)
            cand, feats, tops = self._rows(int(u), scores)
            for c, top in zip(self.parts, tops, strict=True):
                lists[c].append(top[:10])
            if feats is None:
                feats = np.zeros((0, len(self._features.names)))
            rows.append(feats)
            labels.append(np.isin(cand, cut.test[int(u)]))
            cands.append(cand)
            relevant.append(cut.test[int(u)])
        self.selection, self.ranker = select(rows, labels, cands, relevant, lists, self.config.rankers,
                                             self.config.seed, self.config.margin, self.config.regularisation,
                                             self.config.min_lead_z, optional_columns(self._features.names))
        self._flags = kept_flags(self._flags, self.selection)  # the rating group, when a ranker using it won
        self._rater = fit_rater(snapshot, ctx.fitted, self._rater, self.config.seed) if self._flags[2] else None
        self._prepare(snapshot)
        self.components = self._fit_components(snapshot, self.serving, ctx.fitted)
        self._precompute()
        return self

    def _precompute(self) -> None:
        """Rank every known user once and keep the head of each list (see the module doc)."""
        whole = max(PRECOMPUTED, self.config.candidates * len(self.parts))  # every list whole
        self.precomputed = PrecomputedLists.build(len(self._snap().users), lambda u: self._ranked(u)[:2], whole)
        self._last.clear()
        self._last_explained.clear()

    # -- serving --------------------------------------------------------------------------------
    def _snap(self) -> GraphSnapshot:
        if self.snapshot is None or not self.components:
            raise RuntimeError("hybrid is not fitted: call fit(snapshot) or load(dir, snapshot) first")
        return self.snapshot

    def _ranked(self, u: int, exclude: Collection[str] | None = None) -> Ranked:
        """Candidates (sorted) and their scores; the last user's result is kept (without
        ``exclude``). Each component's share of the scores (what explanations need, and the
        costliest part behind a tree ranker) is left out: ``_explained`` adds it."""
        if exclude:
            return self._rank(u, exclude)
        return self._last.get(u, lambda: self._rank(u, None))

    def _explained(self, u: int) -> Ranked:
        """``_ranked`` with each component's share of each score (columns in ``serving`` order); last user kept."""
        return self._last_explained.get(u, lambda: self._rank(u, None, shares=True))

    def _rank(self, u: int, exclude: Collection[str] | None, at: tuple[float, float] | None = None,
              shares: bool = False) -> Ranked:
        snap = self._snap()
        banned = snap.user_items(u)
        if exclude:
            extra = [j for j in (snap.items.get(x) for x in exclude) if j is not None]
            banned = np.concatenate([banned, np.asarray(extra, dtype=banned.dtype)])
        if self.ranker is None:  # a component serves as it is
            (s,) = self._component_scores(u, banned, self.serving, at)
            cand = np.flatnonzero(np.isfinite(s)) if s is not None else np.zeros(0, dtype=np.int64)
            score = s[cand] if s is not None else np.zeros(0)
            return Ranked(cand, score, score[:, None] if len(cand) else None)
        scores = self._component_scores(u, banned, self.parts, at)
        cand, feats, _ = self._rows(u, scores, at)
        if feats is None:
            return Ranked(cand, np.zeros(0), None)
        if not shares:
            return Ranked(cand, self.ranker.score(feats), None)
        parts = self.ranker.parts(feats)
        geo = len(GEO) if self._features.geo else 0
        return Ranked(cand, self.ranker.score(feats), component_shares(parts, self.parts, geo))

    def score_from_place(self, user_id: str, lat: float, lon: float) -> np.ndarray | None:
        """``candidate_scores`` as if the user were at (lat, lon) (geography measured from there)."""
        u = self._snap().users.get(user_id)
        cand, score, _ = self._rank(u, None, (lat, lon)) if u is not None else (np.zeros(0), None, None)
        return spread(cand, score, len(self._snap().items))

    def candidate_scores(self, user_id: str) -> np.ndarray | None:
        """Hybrid scores of the candidates (−inf elsewhere); None when nobody proposes."""
        u = self._snap().users.get(user_id)
        cand, score, _ = self._ranked(u, None) if u is not None else (np.zeros(0), None, None)
        return spread(cand, score, len(self._snap().items))

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        """The precomputed list when it gives the live answer (see the module doc), else live."""
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None or k <= 0:
            return []
        top = self.precomputed
        if top is not None and not self._excludes_new(u, exclude):
            head = top.head(u, max(k * 5, k) if self.config.mmr_lambda < 1.0 else k)
            if head is not None:
                cand, score = head
                order = np.arange(len(cand))
                if self.config.mmr_lambda < 1.0 and len(order):
                    order = self._mmr(cand, score, order, k)
                return [Recommendation(snap.items.ids[cand[j]], float(score[j]), self.name) for j in order[:k]]
        return self.recommend_live(user_id, k, exclude)

    def _excludes_new(self, u: int, exclude: Collection[str] | None) -> bool:
        """Whether ``exclude`` bans a known item that user ``u`` has not interacted with."""
        if not exclude:
            return False
        snap = self._snap()
        extra = [j for j in (snap.items.get(x) for x in exclude) if j is not None]
        return bool(extra) and not np.isin(extra, snap.user_items(u)).all()

    def recommend_live(self, user_id: str, k: int = 10,
                       exclude: Collection[str] | None = None) -> list[Recommendation]:
        """``recommend`` by scoring the components now (what the precomputed lists hold)."""
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None or k <= 0:
            return []
        cand, score, _ = self._ranked(u, exclude)
        if len(cand) == 0:
            return []
        order = np.lexsort((cand, -score))
        if self.config.mmr_lambda < 1.0:
            order = self._mmr(cand, score, order, k)
        return [Recommendation(snap.items.ids[cand[j]], float(score[j]), self.name) for j in order[:k]]

    def _mmr(self, cand: np.ndarray, score: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
        return mmr(cand, score, order, k, self.config.mmr_lambda, self._features.tag_vectors)

    # -- explanations ------------------------------------------------------------------------------
    def explain(self, user_id: str, item_id: str) -> list[Reason]:
        """Every reason of the explaining components (``explain_top`` with no limit)."""
        return sorted(self.explain_top(user_id, item_id, None).reasons, key=lambda r: -r.contribution)

    def explain_top(self, user_id: str, item_id: str, limit: int | None = None) -> TopReasons:
        return self.explain_many(user_id, [item_id], limit)[0]

    def explain_many(self, user_id: str, item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        snap = self._snap()
        u = snap.users.get(user_id)
        ranked = self._explained(u) if u is not None else None
        by = Explainers(self.serving, self.ranker is None, self.components)
        return explain_many(snap, ranked, by, user_id, item_ids, limit)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        snap = self._snap()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for cname, rec in self.components.items():
            rec.save(d / "components" / cname)
        save_rater(self._rater, d)
        top = self.precomputed.arrays() if self.precomputed is not None else {}
        state = self.ranker.state() if self.ranker is not None else {}
        arrays = {f"ranker_{k}": v for k, v in state.items() if not k.endswith("_json")}
        save_arrays(d / ARRAYS_DIR, {**arrays, **top, **self._features.saved_arrays()})
        meta = {"format": MODEL_FORMAT, "name": self.name, "config": _config_json(self.config),
                "fingerprint": snap.fingerprint, "features": self.feature_names(),
                "feature_flags": dict(zip(("time", "ratings", "predicted"), self._flags, strict=True)),
                "selection": self.selection.to_json() if self.selection else None,
                "ranker": {k: v for k, v in state.items() if k.endswith("_json")}}
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> Hybrid:
        d = Path(directory)
        meta = read_model_meta(d, cls.name, snapshot)
        model = cls(config_from_json(HybridConfig, meta["config"]))
        flags = meta.get("feature_flags") or {}
        model._flags = (bool(flags.get("time")), bool(flags.get("ratings")), bool(flags.get("predicted")))
        model._rater = load_rater(d, snapshot, model._flags[2])
        if meta.get("features") != model.feature_names(snapshot):
            raise ValueError(f"{d}: feature list does not match this hybrid's configuration")
        if not meta.get("selection"):
            raise ValueError(f"{d}: a hybrid saved before it chose what to serve; train the bundle again")
        model.selection = Selection(**meta["selection"])
        arrays = map_arrays(d / ARRAYS_DIR)
        kind = model.selection.ranker
        declared = {f"ranker_{k}": dims for k, dims in (ranker_class(kind).ARRAYS if kind is not None else {}).items()}
        check_arrays(arrays, {**declared, **TOP_ARRAYS, **FeatureSpace.SAVED}, snapshot, d / ARRAYS_DIR)
        model._prepare(snapshot, arrays)
        model.components = {c: get(c).load(d / "components" / c, snapshot) for c in model.serving}
        if kind is not None:
            state = {k[len("ranker_"):]: arrays[k] for k in declared}
            model.ranker = restore_ranker(kind, {**state, **meta.get("ranker", {})})
        try:
            model.precomputed = PrecomputedLists.from_arrays(arrays, len(snapshot.users))
        except ValueError as exc:
            raise ValueError(f"{d}: {exc}") from None
        return model


def _config_json(config: HybridConfig) -> dict[str, Any]:
    out = asdict(config)
    out["component_configs"] = {k: dict(v) for k, v in config.component_configs.items()}
    return out

