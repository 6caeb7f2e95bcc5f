"""Hybrid: the union of the other recommenders' candidates, re-ranked by a learned model.

Fitting has two stages, so the ranker never learns from pairs it is later scored on:

1. *Learn.* Hold out a random 20 % of each user's training interactions (a validation cut,
   seeded, with held-out taggings removed as in evaluation), fit every component on the
   rest, take each component's top-``candidates`` items for a sample of users, describe
   each (user, candidate) with features and label it by whether it was held out. A
   logistic regression (scikit-learn) learns the weights.
2. *Serve.* Refit the components on the whole snapshot — or take the ones ``fit_models``
   has already fitted with the same config on the same snapshot (``fit(snapshot, fitted)``)
   — and the learned weights re-rank their candidate union:
   ``score = Σ_f w_f · (x_f − μ_f) / σ_f`` (the intercept is left out: it does not change
   the order).

Scoring nine components costs milliseconds, so ``fit`` also ranks every known user once
and keeps the first ``PRECOMPUTED`` of each list (items and final scores, saved in the npz).
``recommend`` serves from it when the answer cannot differ from live scoring: no excluded
item beyond the user's own (exclusions change the components' candidate lists, so they are
scored live) and enough items kept for ``k`` (and the MMR pool). Otherwise it scores live.

Features per (user, candidate): for each component its reciprocal rank (0 when the item
is not in its top list) and its score standardised over the user's candidates; the item's
log audience; the cosine between the user's tag profile and the item's tags; the log
number of followed users who interacted with the item; how many components proposed it.
With ``mmr_lambda < 1`` the list is re-ranked greedily by maximal marginal relevance over
tag cosine, trading relevance for diversity.

The score is not a sum over graph paths, so reasons are the own reasons of the (at most
three) components with the largest positive part of the score, each scaled to that part and
marked ``evidence``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from graph.snapshot import GraphSnapshot
from recommenders.base import Reason, Recommendation, Recommender, TopReasons, top_reasons
from recommenders.integrity import Dim, check_arrays
from recommenders.scored import MODEL_FORMAT, config_from_json, read_model_meta

GLOBAL_FEATURES = ("log_audience", "tag_cosine", "log_friends", "n_sources")
#: Reasons come from the components with the largest positive parts of the score (at most this many).
EXPLAINING_COMPONENTS = 3
#: How many of each known user's ranked items ``fit`` keeps for serving without scoring.
PRECOMPUTED = 200


#: The hybrid's own arrays (``recommenders.integrity.check_arrays``): per-feature weights and
#: standardisation, and (``TOP_ARRAYS``) the precomputed lists of every user.
ARRAYS: dict[str, tuple[Dim, ...]] = {"weights": (None,), "mean": (None,), "std": (None,)}
TOP_ARRAYS: dict[str, tuple[Dim, ...]] = {"top_indptr": (None,), "top_items": (None,), "top_scores": (None,),
                                          "top_complete": ("users",)}


@dataclass(frozen=True)
class HybridConfig:
    components: tuple[str, ...] = (
        "graph_walk", "itemcf", "usercf", "als", "social", "content", "popularity", "association", "bpr",
    )
    candidates: int = 50
    validation_fraction: float = 0.2
    max_train_users: int = 2000
    regularisation: float = 1.0
    mmr_lambda: float = 1.0
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
        self._last: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None = None
        self._top: dict[str, np.ndarray] | None = None  # precomputed lists: indptr, items, scores, complete

    # -- features -----------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        names = [f"{c}:{kind}" for c in self.config.components for kind in ("rr", "z")] + list(GLOBAL_FEATURES)
        return names + [f"{n}^2" for n in names]

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot
        self._last = None
        x = sp.csr_matrix(snapshot.interactions, dtype=np.float64, copy=True)
        x.data[:] = 1.0
        self._x = x
        self._audience = np.asarray(x.sum(axis=0)).ravel()
        tags = sp.csr_matrix(snapshot.item_tags, dtype=np.float64, copy=True)
        tags.data = np.log1p(tags.data)
        norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
        self._tags = sp.csr_matrix(sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ tags)
        follows = sp.csr_matrix(snapshot.follows, dtype=np.float64, copy=True)
        follows.data[:] = 1.0
        self._profiles = sp.csr_matrix(x @ self._tags)  # each user's summed item-tag vectors
        self._friend_items = sp.csr_matrix(follows @ x)  # how many followed users have each item

    def _component_scores(self, u: int, exclude: np.ndarray) -> list[np.ndarray | None]:
        out = []
        uid = self.snapshot.users.ids[u]
        for rec in self.components.values():
            s = rec.score_user(uid)
            if s is None:
                out.append(None)
                continue
            s = np.array(s, dtype=np.float64, copy=True)
            s[exclude] = -np.inf
            if getattr(rec, "positive_only", True):
                s[s <= 0] = -np.inf
            out.append(s)
        return out

    def _candidates(self, u: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The candidate union of user ``u`` and its feature matrix (None when nobody proposes)."""
        n = self.config.candidates
        scores = self._component_scores(u, exclude)
        tops = []
        for s in scores:
            if s is None:
                tops.append(np.zeros(0, dtype=np.int64))
                continue
            finite = np.isfinite(s)
            m = min(n, int(finite.sum()))
            if m == 0:
                tops.append(np.zeros(0, dtype=np.int64))
                continue
            part = np.argpartition(-np.where(finite, s, -np.inf), m - 1)[:m]
            tops.append(part[np.lexsort((part, -s[part]))])
        cand = np.unique(np.concatenate(tops)) if tops else np.zeros(0, dtype=np.int64)
        if len(cand) == 0:
            return cand, None
        cols = []
        sources = np.zeros(len(cand))
        for s, top in zip(scores, tops, strict=True):
            rr = np.zeros(len(cand))
            pos = np.searchsorted(cand, top)
            rr[pos] = 1.0 / (1.0 + np.arange(len(top)))
            sources += rr > 0
            z = np.zeros(len(cand))
            if s is not None:
                v = s[cand]
                ok = np.isfinite(v)
                if ok.sum() > 1:
                    mu, sd = v[ok].mean(), v[ok].std()
                    z[ok] = (v[ok] - mu) / sd if sd > 0 else 0.0
                    z[~ok] = (v[ok].min() - mu) / sd if sd > 0 else 0.0
            cols += [rr, z]
        profile = _dense_row(self._profiles, u)
        a, b = self._profiles.indptr[u], self._profiles.indptr[u + 1]
        pn = float(np.sqrt(np.square(self._profiles.data[a:b]).sum()))  # no BLAS call: steady under load
        tag_cos = (self._tags[cand] @ profile) / pn if pn > 0 else np.zeros(len(cand))
        friends = _dense_row(self._friend_items, u)[cand]
        cols += [np.log1p(self._audience[cand]), np.asarray(tag_cos).ravel(), np.log1p(friends), sources]
        feats = np.column_stack(cols)
        return cand, np.hstack([feats, feats**2])

    # -- fitting --------------------------------------------------------------------------------
    def _fit_components(self, snapshot: GraphSnapshot,
                        fitted: Mapping[str, Recommender] | None = None) -> dict[str, Recommender]:
        """Each component fitted on ``snapshot``; one in ``fitted`` is taken as it is when it
        has the config this hybrid would give it and was fitted on this very snapshot."""
        from recommenders.registry import create

        unknown = [c for c in self.config.components if c == self.name]
        if unknown:
            raise ValueError("the hybrid cannot contain itself")
        comps = {}
        for c in self.config.components:
            rec = create(c, seed=self.config.seed)
            if not hasattr(rec, "score_user"):
                raise ValueError(f"component {c!r} cannot score all items (no score_user)")
            done = (fitted or {}).get(c)
            if done is not None and _same_fit(done, rec, snapshot):
                comps[c] = done
            else:
                comps[c] = rec.fit(snapshot)
        return comps

    def fit(self, snapshot: GraphSnapshot, fitted: Mapping[str, Recommender] | None = None) -> Hybrid:
        """Learn the ranker on a validation cut, then serve from components fitted on the
        whole ``snapshot``; ``fitted`` offers components already fitted on it (see
        ``_fit_components``), which saves refitting them."""
        from sklearn.linear_model import LogisticRegression

        from recommenders.splits import random_holdout

        cut = random_holdout(snapshot, fraction=self.config.validation_fraction, seed=self.config.seed,
                             min_interactions=5)
        self._prepare(cut.train)
        self.components = self._fit_components(cut.train)
        users = cut.users
        rng = np.random.default_rng(self.config.seed)
        if len(users) > self.config.max_train_users:
            users = sorted(rng.choice(users, size=self.config.max_train_users, replace=False).tolist())
        rows, labels = [], []
        for u in users:
            cand, feats = self._candidates(u, cut.train.user_items(u))
            if feats is None:
                continue
            rows.append(feats)
            labels.append(np.isin(cand, cut.test[u]))
        n_feat = len(self.feature_names())
        if rows and any(lab.any() for lab in labels) and not all(lab.all() for lab in labels):
            x = np.vstack(rows)
            y = np.concatenate(labels)
            self._mean, self._std = x.mean(axis=0), x.std(axis=0)
            self._std[self._std == 0] = 1.0
            lr = LogisticRegression(C=1.0 / self.config.regularisation, max_iter=1000)
            lr.fit((x - self._mean) / self._std, y)
            self._weights = lr.coef_.ravel().astype(np.float64)
        else:  # too little data to learn from: equal votes by reciprocal rank
            self._mean, self._std = np.zeros(n_feat), np.ones(n_feat)
            self._weights = np.array([1.0 if f.endswith(":rr") else 0.0 for f in self.feature_names()])
        self._prepare(snapshot)
        self.components = self._fit_components(snapshot, fitted)
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
        """Candidates, their scores and per-feature parts; the last user's result is kept
        (without ``exclude``) so that explaining a list just shown costs no re-scoring."""
        snap = self._snap()
        cached = self._last
        if not exclude and cached is not None and cached[0] == u:
            return cached[1]
        banned = snap.user_items(u)
        if exclude:
            extra = [j for j in (snap.items.get(x) for x in exclude) if j is not None]
            banned = np.concatenate([banned, np.asarray(extra, dtype=banned.dtype)])
        cand, feats = self._candidates(u, banned)
        if feats is None:
            result: tuple[np.ndarray, np.ndarray, np.ndarray | None] = (cand, np.zeros(0), None)
        else:
            parts = (feats - self._mean) / self._std * self._weights
            result = (cand, parts.sum(axis=1), parts)
        if not exclude:
            self._last = (u, result)
        return result

    def score_user(self, user_id: str) -> np.ndarray | None:
        """Hybrid scores of the candidate union (−inf elsewhere); None when nobody proposes."""
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
        sims = (self._tags[cand[pool]] @ self._tags[cand[pool]].T).toarray()
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

    def explain(self, user_id: str, item_id: str) -> list[Reason]:
        """The reasons of the (at most three) components that raised the item's score most,
        each scaled to that component's part of the hybrid score."""
        snap = self._snap()
        u, i = snap.users.get(user_id), snap.items.get(item_id)
        if u is None or i is None:
            return []
        cand, _, parts = self._ranked(u, None)
        pos = np.searchsorted(cand, i)
        if parts is None or pos >= len(cand) or cand[pos] != i:
            return []
        out: list[Reason] = []
        for share, cname in self._explaining(parts[pos]):
            reasons = self.components[cname].explain(user_id, item_id)
            total = sum(abs(r.contribution) for r in reasons)
            for r in reasons:
                weight = abs(r.contribution) / total if total > 0 else 1.0 / len(reasons)
                out.append(replace(r, contribution=share * weight, kind="evidence", text=f"[{cname}] {r.text}"))
        return sorted(out, key=lambda r: -r.contribution)

    def _explaining(self, row: np.ndarray) -> list[tuple[float, str]]:
        """The components (at most ``EXPLAINING_COMPONENTS``) with the largest positive part
        of a candidate's score, with that part."""
        m = len(row) // 2  # the squared features follow the plain ones
        shares = [(float(row[2 * n] + row[2 * n + 1] + row[m + 2 * n] + row[m + 2 * n + 1]), cname)
                  for n, cname in enumerate(self.components)]
        return [(share, cname) for share, cname in sorted(shares, reverse=True)[:EXPLAINING_COMPONENTS]
                if share > 0]

    def explain_top(self, user_id: str, item_id: str, limit: int | None = None) -> TopReasons:
        return self.explain_many(user_id, [item_id], limit)[0]

    def explain_many(self, user_id: str, item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        """``explain`` cut to the ``limit`` strongest reasons, for several items of one user:
        each component explains its items together and builds only its own ``limit`` best
        paths; the omitted ones are scaled like the shown ones, so shown + omitted equals the
        sum of the full explanation."""
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None:
            return [TopReasons() for _ in item_ids]
        cand, _, parts = self._ranked(u, None)
        wanted: dict[str, list[tuple[int, float]]] = {}  # component -> [(item position, share)]
        for k, item_id in enumerate(item_ids):
            i = snap.items.get(item_id)
            pos = np.searchsorted(cand, i) if i is not None else len(cand)
            if parts is None or pos >= len(cand) or cand[pos] != i:
                continue
            for share, cname in self._explaining(parts[pos]):
                wanted.setdefault(cname, []).append((k, share))
        shown: list[list[Reason]] = [[] for _ in item_ids]
        omitted = np.zeros(len(item_ids), dtype=np.int64)
        rest, rest_abs = np.zeros(len(item_ids)), np.zeros(len(item_ids))
        for cname, asks in wanted.items():
            tops = self.components[cname].explain_many(user_id, [item_ids[k] for k, _ in asks], limit)
            for (k, share), top in zip(asks, tops, strict=True):
                n = len(top.reasons) + top.omitted
                total = sum(abs(r.contribution) for r in top.reasons) + top.omitted_magnitude
                for r in top.reasons:
                    weight = abs(r.contribution) / total if total > 0 else 1.0 / n
                    shown[k].append(replace(r, contribution=share * weight, kind="evidence",
                                            text=f"[{cname}] {r.text}"))
                if top.omitted:
                    part = share * (top.omitted_magnitude / total if total > 0 else top.omitted / n)
                    omitted[k] += top.omitted
                    rest[k] += part
                    rest_abs[k] += abs(part)
        out = []
        for k in range(len(item_ids)):
            top = top_reasons(shown[k], limit)
            out.append(TopReasons(top.reasons, int(omitted[k]) + top.omitted, float(rest[k]) + top.omitted_contribution,
                                  float(rest_abs[k]) + top.omitted_magnitude))
        return out

    # -- persistence -----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        snap = self._snap()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for cname, rec in self.components.items():
            rec.save(d / "components" / cname)
        top = {f"top_{key}": value for key, value in (self._top or {}).items()}
        np.savez_compressed(d / "arrays.npz", weights=self._weights, mean=self._mean, std=self._std, **top)
        meta = {"format": MODEL_FORMAT, "name": self.name, "config": asdict(self.config),
                "fingerprint": snap.fingerprint, "features": self.feature_names()}
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> Hybrid:
        from recommenders.registry import get

        d = Path(directory)
        meta = read_model_meta(d, cls.name, snapshot)
        model = cls(config_from_json(HybridConfig, meta["config"]))
        if meta.get("features") != model.feature_names():
            raise ValueError(f"{d}: feature list does not match this hybrid's configuration")
        model._prepare(snapshot)
        model.components = {c: get(c).load(d / "components" / c, snapshot) for c in model.config.components}
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        check_arrays(arrays, {**ARRAYS, **(TOP_ARRAYS if "top_indptr" in arrays else {})}, snapshot, d / "arrays.npz")
        model._weights, model._mean, model._std = arrays["weights"], arrays["mean"], arrays["std"]
        keys = ("indptr", "items", "scores", "complete")
        if all(f"top_{key}" in arrays for key in keys):  # models saved before precomputation score live
            model._top = {key: arrays[f"top_{key}"] for key in keys}
            if len(model._top["indptr"]) != len(snapshot.users) + 1:
                raise ValueError(f"{d}: precomputed lists do not match the snapshot's users")
        return model

    def weights(self) -> dict[str, float]:
        """The learned weight of each (standardised) feature, for reports."""
        return dict(zip(self.feature_names(), self._weights.tolist(), strict=True))



def _same_fit(done: Recommender, fresh: Recommender, snapshot: GraphSnapshot) -> bool:
    """Whether ``done`` is what fitting ``fresh`` on ``snapshot`` would give: same class,
    same config, fitted on a snapshot with the same fingerprint."""
    fitted_on = getattr(done, "snapshot", None)
    return (type(done) is type(fresh) and getattr(done, "config", None) == getattr(fresh, "config", None)
            and fitted_on is not None and fitted_on.fingerprint == snapshot.fingerprint)


def _dense_row(m: sp.csr_matrix, r: int) -> np.ndarray:
    """Row ``r`` of a CSR matrix as a dense vector, without scipy's indexing overhead."""
    out = np.zeros(m.shape[1])
    a, b = m.indptr[r], m.indptr[r + 1]
    out[m.indices[a:b]] = m.data[a:b]
    return out
