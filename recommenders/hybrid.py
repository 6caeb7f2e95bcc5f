"""Hybrid: the other recommenders' candidates re-ranked by a learned model — or, when that
does not pay on validation, the best of them as it is.

Fitting has two stages, so nothing is chosen on the pairs it is judged on:

1. *Learn and choose.* On the validation cut (``recommenders.validation``: a seeded 20 % of
   each user's interactions held out, taggings of held-out pairs removed; the same cut the
   tuner uses), fit every component on the rest — or take the ones the tuner fitted there
   (``fit(..., cut_fitted=)``) — take each component's top ``candidates`` items for a sample
   of users, describe each (user, candidate) (``recommenders.hybrid_features``) and label it
   by whether it was held out. Each ranker of ``rankers`` (``recommenders.hybrid_ranker``:
   logistic regression, LightGBM LambdaRank) is scored out of fold against every component's
   own list; the winner serves if it beats the best component by ``margin``, else that
   component serves (``recommenders.hybrid_selection``; ``selection`` keeps the record).
2. *Serve.* Refit what serves on the whole snapshot — or take what ``fit_models`` has already
   fitted with the same config on the same snapshot (``fit(snapshot, fitted)``) — and rank.

``fit`` then ranks every known user once and keeps the first ``PRECOMPUTED`` of each list
(items and final scores, saved in the npz). ``recommend`` serves from it when the answer
cannot differ from live scoring: no excluded item beyond the user's own (exclusions change
the components' candidate lists, so they are scored live) and enough items kept for ``k``
(and the MMR pool). Otherwise it scores live. With ``mmr_lambda < 1`` the list is re-ranked
greedily by maximal marginal relevance over tag cosine, trading relevance for diversity.

The score is not a sum over graph paths, so reasons are the own reasons of the (at most
three) components with the largest positive part of the score (``recommenders.hybrid_explain``),
each scaled to that part and marked ``evidence``; a served component explains alone.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from graph.snapshot import GraphSnapshot
from recommenders.base import Reason, Recommendation, Recommender, ScoresAllItems, TopReasons
from recommenders.hybrid_explain import explain_many
from recommenders.hybrid_features import FeatureSpace
from recommenders.hybrid_ranker import RANKERS, Ranker, ranker_class, restore_ranker
from recommenders.hybrid_selection import Selection, select
from recommenders.integrity import Dim, check_arrays
from recommenders.scored import MODEL_FORMAT, config_from_json, read_model_meta

#: How many of each known user's ranked items ``fit`` keeps for serving without scoring.
PRECOMPUTED = 200


#: The hybrid's own arrays (``recommenders.integrity.check_arrays``): the precomputed lists of
#: every user, and the serving ranker's arrays (``Ranker.ARRAYS``, saved with a ``ranker_`` prefix).
TOP_ARRAYS: dict[str, tuple[Dim, ...]] = {"top_indptr": (None,), "top_items": (None,), "top_scores": (None,),
                                          "top_complete": ("users",)}


@dataclass(frozen=True)
class HybridConfig:
    """``component_configs``: Config overrides per component (what the tuner chose);
    ``rankers``: the learned rankers compared on validation; ``margin``: the relative lead on
    validation NDCG@10 a ranker needs over the best component to serve instead of it, and
    ``min_lead_z`` the standard errors of the paired per-user difference it must reach."""

    components: tuple[str, ...] = (
        "ease", "graph_walk", "itemcf", "usercf", "als", "social", "content", "popularity", "association", "bpr",
    )
    candidates: int = 50
    validation_fraction: float = 0.2
    max_train_users: int = 2000
    regularisation: float = 1.0
    rankers: tuple[str, ...] = RANKERS
    margin: float = 0.01
    min_lead_z: float = 2.0
    mmr_lambda: float = 1.0
    component_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 42


class Hybrid(Recommender):
    name: ClassVar[str] = "hybrid"
    additive: ClassVar[bool] = False
    Config = HybridConfig

    def __init__(self, config: HybridConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else HybridConfig()
        self.config = replace(base, **overrides) if overrides else base
        self.snapshot: GraphSnapshot | None = None
        self.components: dict[str, Recommender] = {}
        self.selection: Selection | None = None
        self.ranker: Ranker | None = None
        self._flags = (False, False)  # time and rating features
        self._last: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None = None
        self._top: dict[str, np.ndarray] | None = None  # precomputed lists: indptr, items, scores, complete

    # -- what serves ------------------------------------------------------------------------------
    @property
    def serving(self) -> list[str]:
        """The components scored when serving: all of them behind a ranker, else the one served."""
        sel = self.selection
        if sel is not None and sel.serve == "component" and sel.component is not None:
            return [sel.component]
        return list(self.config.components)

    def feature_names(self) -> list[str]:
        return FeatureSpace.names_for(self.config.components, *self._flags)

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot
        self._last = None
        self._features = FeatureSpace(snapshot, self.config.components, *self._flags)

    def _component_scores(self, u: int, exclude: np.ndarray, names: Sequence[str]) -> list[np.ndarray | None]:
        out = []
        uid = self._snap().users.ids[u]
        for name in names:
            rec = self.components[name]
            s = rec.score_user(uid)  # type: ignore[attr-defined]
            if s is None:
                out.append(None)
                continue
            s = np.array(s, dtype=np.float64, copy=True)
            s[exclude] = -np.inf
            if rec.positive_only:  # type: ignore[attr-defined]
                s[s <= 0] = -np.inf
            out.append(s)
        return out

    # -- fitting --------------------------------------------------------------------------------
    def _component(self, name: str) -> Recommender:
        from recommenders.registry import create

        if name == self.name:
            raise ValueError("the hybrid cannot contain itself")
        rec = create(name, **{**dict(self.config.component_configs.get(name, {})), "seed": self.config.seed})
        if not isinstance(rec, ScoresAllItems):
            raise ValueError(f"component {name!r} cannot score all items (no score_user)")
        return rec

    def _fit_components(self, snapshot: GraphSnapshot, names: Sequence[str],
                        fitted: Mapping[str, Recommender] | None = None) -> dict[str, Recommender]:
        """Each component fitted on ``snapshot``; one in ``fitted`` is taken as it is when it
        has the config this hybrid would give it and was fitted on this very snapshot."""
        comps = {}
        for c in names:
            rec = self._component(c)
            done = (fitted or {}).get(c)
            comps[c] = done if done is not None and _same_fit(done, rec, snapshot) else rec.fit(snapshot)
        return comps

    def fit(self, snapshot: GraphSnapshot, fitted: Mapping[str, Recommender] | None = None,
            cut_fitted: Mapping[str, Recommender] | None = None) -> Hybrid:
        """Learn and choose on the validation cut, then serve from what is fitted on the
        whole ``snapshot``; ``fitted`` and ``cut_fitted`` offer components already fitted on
        the snapshot and on the cut's training part (see ``_fit_components``)."""
        from recommenders.validation import validation_cut

        for c in self.config.components:
            self._component(c)  # bad names and options fail before any work
        if any(r not in RANKERS for r in self.config.rankers):
            raise ValueError(f"unknown ranker in {self.config.rankers}; expected some of {', '.join(RANKERS)}")
        cut = validation_cut(snapshot, self.config.seed, self.config.validation_fraction)
        self._flags = FeatureSpace.available(cut.train)
        self._prepare(cut.train)
        self.components = self._fit_components(cut.train, self.config.components, cut_fitted)
        users = np.asarray(cut.users, dtype=np.int64)
        if len(users) > self.config.max_train_users:
            rng = np.random.default_rng(self.config.seed)
            users = np.sort(rng.choice(users, size=self.config.max_train_users, replace=False))
        rows, labels, cands, relevant = [], [], [], []
        lists: dict[str, list[np.ndarray]] = {c: [] for c in self.config.components}
        for u in users:
            scores = self._component_scores(int(u), cut.train.user_items(int(u)), self.config.components)
            cand, feats, tops = self._features.rows(int(u), scores, self.config.candidates)
            for c, top in zip(self.config.components, tops, strict=True):
                lists[c].append(top[:10])
            if feats is None:
                feats = np.zeros((0, len(self._features.names)))
            rows.append(feats)
            labels.append(np.isin(cand, cut.test[int(u)]))
            cands.append(cand)
            relevant.append(cut.test[int(u)])
        self.selection, self.ranker = select(rows, labels, cands, relevant, lists, self.config.rankers,
                                             self.config.seed, self.config.margin, self.config.regularisation,
                                             self.config.min_lead_z)
        self._prepare(snapshot)
        self.components = self._fit_components(snapshot, self.serving, fitted)
        self._precompute()
        return self

    def _precompute(self) -> None:
        """Rank every known user once and keep the head of each list (see the module doc)."""
        n_users = len(self._snap().users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        items, scores = [], []
        complete = np.zeros(n_users, dtype=bool)
        for u in range(n_users):
            cand, score, _ = self._ranked(u, None)
            order = np.lexsort((cand, -score))
            complete[u] = len(order) <= PRECOMPUTED
            order = order[:PRECOMPUTED]
            items.append(cand[order].astype(np.int32))
            scores.append(score[order])
            indptr[u + 1] = indptr[u] + len(order)
        self._last = None
        self._top = {"indptr": indptr, "complete": complete,
                     "items": np.concatenate(items) if items else np.zeros(0, dtype=np.int32),
                     "scores": np.concatenate(scores) if scores else np.zeros(0)}

    # -- serving --------------------------------------------------------------------------------
    def _snap(self) -> GraphSnapshot:
        if self.snapshot is None or not self.components:
            raise RuntimeError("hybrid is not fitted: call fit(snapshot) or load(dir, snapshot) first")
        return self.snapshot

    def _ranked(self, u: int, exclude: Collection[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Candidates (sorted), their scores and each explaining component's share of them
        (columns in ``serving`` order); the last user's result is kept (without ``exclude``)
        so that explaining a list just shown costs no re-scoring."""
        snap = self._snap()
        cached = self._last
        if not exclude and cached is not None and cached[0] == u:
            return cached[1]
        banned = snap.user_items(u)
        if exclude:
            extra = [j for j in (snap.items.get(x) for x in exclude) if j is not None]
            banned = np.concatenate([banned, np.asarray(extra, dtype=banned.dtype)])
        result: tuple[np.ndarray, np.ndarray, np.ndarray | None]
        if self.ranker is None:  # a component serves as it is
            (s,) = self._component_scores(u, banned, self.serving)
            cand = np.flatnonzero(np.isfinite(s)) if s is not None else np.zeros(0, dtype=np.int64)
            score = s[cand] if s is not None else np.zeros(0)
            result = (cand, score, score[:, None] if len(cand) else None)
        else:
            scores = self._component_scores(u, banned, self.config.components)
            cand, feats, _ = self._features.rows(u, scores, self.config.candidates)
            if feats is None:
                result = (cand, np.zeros(0), None)
            else:
                parts = self.ranker.parts(feats)
                n = len(self.config.components)
                shares = parts[:, 0 : 2 * n : 2] + parts[:, 1 : 2 * n : 2]  # each component's rr and z parts
                result = (cand, self.ranker.score(feats), shares)
        if not exclude:
            self._last = (u, result)
        return result

    def score_user(self, user_id: str) -> np.ndarray | None:
        """Hybrid scores of the candidates (−inf elsewhere); None when nobody proposes."""
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None:
            return None
        cand, score, _ = self._ranked(u, None)
        if len(cand) == 0:
            return None
        out = np.full(len(snap.items), -np.inf)
        out[cand] = score
        return out

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        """The precomputed list when it gives the live answer (see the module doc), else live."""
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None or k <= 0:
            return []
        top = self._top
        if top is not None and not self._excludes_new(u, exclude):
            a, b = int(top["indptr"][u]), int(top["indptr"][u + 1])
            need = max(k * 5, k) if self.config.mmr_lambda < 1.0 else k
            if top["complete"][u] or b - a >= need:
                cand, score = top["items"][a:b], top["scores"][a:b]
                order = np.arange(b - a)
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
        """Greedy maximal marginal relevance: λ·relevance − (1 − λ)·max tag cosine to those chosen."""
        lam = self.config.mmr_lambda
        pool = order[: max(k * 5, k)]
        rel = score[pool]
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones(len(pool))
        tags = self._features.tag_vectors[cand[pool]]
        sims = (tags @ tags.T).toarray()
        chosen: list[int] = []
        best_sim = np.zeros(len(pool))
        left = np.ones(len(pool), dtype=bool)
        for _ in range(min(k, len(pool))):
            value = np.where(left, lam * rel - (1 - lam) * best_sim, -np.inf)
            j = int(np.argmax(value))
            chosen.append(j)
            left[j] = False
            best_sim = np.maximum(best_sim, sims[j])
        return pool[chosen]

    # -- explanations ------------------------------------------------------------------------------
    def explain(self, user_id: str, item_id: str) -> list[Reason]:
        """Every reason of the explaining components (``explain_top`` with no limit)."""
        return sorted(self.explain_top(user_id, item_id, None).reasons, key=lambda r: -r.contribution)

    def explain_top(self, user_id: str, item_id: str, limit: int | None = None) -> TopReasons:
        return self.explain_many(user_id, [item_id], limit)[0]

    def explain_many(self, user_id: str, item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        return explain_many(self, user_id, item_ids, limit)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        snap = self._snap()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for cname, rec in self.components.items():
            rec.save(d / "components" / cname)
        top = {f"top_{key}": value for key, value in (self._top or {}).items()}
        state = self.ranker.state() if self.ranker is not None else {}
        arrays = {f"ranker_{k}": v for k, v in state.items() if not k.endswith("_json")}
        np.savez_compressed(d / "arrays.npz", **arrays, **top)
        meta = {"format": MODEL_FORMAT, "name": self.name, "config": _config_json(self.config),
                "fingerprint": snap.fingerprint, "features": self.feature_names(),
                "feature_flags": {"time": self._flags[0], "ratings": self._flags[1]},
                "selection": self.selection.to_json() if self.selection else None,
                "ranker": {k: v for k, v in state.items() if k.endswith("_json")}}
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> Hybrid:
        from recommenders.registry import get

        d = Path(directory)
        meta = read_model_meta(d, cls.name, snapshot)
        model = cls(config_from_json(HybridConfig, meta["config"]))
        flags = meta.get("feature_flags") or {}
        model._flags = (bool(flags.get("time", False)), bool(flags.get("ratings", False)))
        if meta.get("features") != model.feature_names():
            raise ValueError(f"{d}: feature list does not match this hybrid's configuration")
        if not meta.get("selection"):
            raise ValueError(f"{d}: a hybrid saved before it chose what to serve; train the bundle again")
        model.selection = Selection(**meta["selection"])
        model._prepare(snapshot)
        model.components = {c: get(c).load(d / "components" / c, snapshot) for c in model.serving}
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        kind = model.selection.ranker
        declared = {f"ranker_{k}": dims for k, dims in (ranker_class(kind).ARRAYS if kind is not None else {}).items()}
        check_arrays(arrays, {**declared, **TOP_ARRAYS}, snapshot, d / "arrays.npz")
        if kind is not None:
            state = {k[len("ranker_"):]: arrays[k] for k in declared}
            model.ranker = restore_ranker(kind, {**state, **meta.get("ranker", {})})
        model._top = {key[len("top_"):]: arrays[key] for key in TOP_ARRAYS}
        if len(model._top["indptr"]) != len(snapshot.users) + 1:
            raise ValueError(f"{d}: precomputed lists do not match the snapshot's users")
        return model


def _config_json(config: HybridConfig) -> dict[str, Any]:
    out = asdict(config)
    out["component_configs"] = {k: dict(v) for k, v in config.component_configs.items()}
    return out


def _same_fit(done: Recommender, fresh: Recommender, snapshot: GraphSnapshot) -> bool:
    """Whether ``done`` is what fitting ``fresh`` on ``snapshot`` would give: same class,
    same config, fitted on a snapshot with the same fingerprint."""
    fitted_on = getattr(done, "snapshot", None)
    return (type(done) is type(fresh) and getattr(done, "config", None) == getattr(fresh, "config", None)
            and fitted_on is not None and fitted_on.fingerprint == snapshot.fingerprint)
