"""The one read path: what ``kgrec recommend``, ``kgrec writeback`` and the API serve.

A ``Server`` holds a loaded bundle (snapshot and fitted models); a ``Query`` says what is
asked; a ``UserState`` says what the store knows beyond the bundle (the user's current history
and dislikes, the hidden items: ``recommenders.live`` reads it). The order of a request is:

1. candidates and ranking, source by source: the requested model (or the default), then the
   bundle's fallback order, then anonymous popularity for users the bundle never saw;
2. filtering: the user's items, ``exclude``, their dislikes, hidden items, the tag filters
   (``tags``: at least one of them; ``not_tags``: none of them) and ``near``/``radius_km`` —
   applied to the whole score vector when a model scores every item (``ScoresAllItems``), else to ever longer lists;
3. explanations for the items shown (the strongest ``max_reasons`` paths of each).

Rating-only models (``recommends`` False) never serve a list: they wait in ``raters`` (with every
``PredictsRatings`` model) for ``recommenders.serving.ratings``.

A user whose history or dislikes changed since the bundle is scored from that history by
models that fold it in (``FoldsInHistory``, disliked items as negative evidence); the others
keep their bundle-time ranking, filtered. ``at``: models that measure distance (``ScoresFromPlace``)
score from there (``recommenders.serving.geo_query``). Models that score profiles (``ScoresProfiles``)
score a user from the Attribute ids the store holds for them (``UserState.attributes``) and their
history, so a user the bundle never saw who has attributes is served by them at the next request.
``q``: only items whose text holds one of the words, and the pool re-ranked towards them
(``recommenders.serving.text_query``). Every item keeps the ``source`` that produced it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import (
    ExplainsHistory,
    FoldsInHistory,
    PredictsRatings,
    Reason,
    Recommendation,
    Recommender,
    RecommendsAnonymously,
    ScoresAllItems,
    ScoresFromPlace,
    ScoresProfiles,
    TopReasons,
    top_reasons,
)
from kgrec.recommenders.bundle.integrity import BundleSeal
from kgrec.recommenders.bundle.model_bundle import Bundle
from kgrec.recommenders.ranking import top_allowed
from kgrec.recommenders.reason_paths import PathBuilder
from kgrec.recommenders.serving.geo_query import near_mask
from kgrec.recommenders.serving.policies import DEFAULT_POLICY, Decision, draw, policy_spec, probe_text, suppressed
from kgrec.recommenders.serving.query import BUNDLE_ONLY, Query, UserState, with_dislikes
from kgrec.recommenders.serving.reason_json import Served
from kgrec.recommenders.serving.similar_items import CoAudience, SimilarServing
from kgrec.recommenders.serving.text_query import POOL, TextIndexes, query_reasons, rerank


class Server(SimilarServing):
    """Recommend, find similar items and explain from a loaded bundle plus a ``UserState``."""

    #: What verified the bundle served (its digest and signature state), when it came from one.
    seal: BundleSeal | None = None

    def __init__(self, snapshot: GraphSnapshot, models: Mapping[str, Recommender], chain: Sequence[str],
                 default_model: str | None = None, max_reasons: int = 5) -> None:
        #: Models that predict ratings (``recommenders.serving.ratings``), by name, in chain order.
        self.raters = {m: models[m] for m in [*chain, *sorted(models)] if isinstance(models.get(m), PredictsRatings)}
        rating_only = sorted(n for n, m in models.items() if not m.recommends)
        models = {n: m for n, m in models.items() if m.recommends}  # the rest serve lists
        if not models:
            raise ValueError("the bundle holds no models that serve lists")
        chain = [m for m in chain if m in models] or sorted(models)
        if default_model in rating_only:
            raise ValueError(f"model {default_model!r} predicts ratings only; it serves no lists")
        if default_model is not None and default_model not in models:
            raise ValueError(f"model {default_model!r} is not in the bundle ({', '.join(sorted(models))})")
        self.snapshot = snapshot
        self.models = dict(models)
        self.chain = chain
        self.default_model = default_model or chain[0]
        self.default_policy = DEFAULT_POLICY
        self.max_reasons = max_reasons
        anonymous = [m for m in chain if isinstance(self.models[m], RecommendsAnonymously)]
        self.anonymous = anonymous[-1] if anonymous else None
        self._paths = PathBuilder(snapshot)
        self._audience = np.bincount(snapshot.interactions.indices, minlength=len(snapshot.items))
        self._tag_items = sp.csc_matrix(snapshot.item_tags)
        self._co_audience: CoAudience | None = None
        self._texts = TextIndexes(snapshot)

    @classmethod
    def from_bundle(cls, bundle: Bundle, default_model: str | None = None, max_reasons: int = 5) -> Server:
        """From a loaded bundle: its models, in the manifest's fallback order."""
        server = cls(bundle.snapshot, bundle.models, bundle.fallback, default_model, max_reasons)
        server.seal = bundle.seal
        return server

    # -- lookups ---------------------------------------------------------------------------
    def order(self, model: str | None = None, fallback: bool = True) -> list[str]:
        """The sources a request walks: the model, then the bundle's chain."""
        name = model or self.default_model
        if name in self.raters and name not in self.models:
            raise ValueError(f"model {name!r} predicts ratings only; it serves no lists")
        if name not in self.models:
            raise ValueError(f"model {name!r} is not in the bundle; it has: {', '.join(sorted(self.models))}")
        return [name, *[m for m in self.chain if m != name]] if fallback else [name]

    def title(self, item: str) -> str | None:
        i = self.snapshot.items.get(item)
        return None if i is None else self.snapshot.item_titles[i]

    def audience(self, item: str) -> int:
        i = self.snapshot.items.get(item)
        return 0 if i is None else int(self._audience[i])

    def bundle_history(self, user: str) -> dict[str, float]:
        """The user's interactions in the bundle (item -> weight)."""
        s = self.snapshot
        u = s.users.get(user)
        if u is None:
            return {}
        r = s.interactions
        lo, hi = r.indptr[u], r.indptr[u + 1]
        return dict(zip((s.items.ids[j] for j in r.indices[lo:hi].tolist()), r.data[lo:hi].astype(float).tolist(),
                        strict=True))

    def bundle_dislikes(self, user: str) -> frozenset[str]:
        s = self.snapshot
        u = s.users.get(user)
        if u is None:
            return frozenset()
        d = s.dislikes
        assert d is not None  # GraphSnapshot.__post_init__ fills it
        return frozenset(s.items.ids[j] for j in d.indices[d.indptr[u]:d.indptr[u + 1]].tolist())

    def bundle_attributes(self, user: str) -> frozenset[str]:
        """The ids of the Attribute nodes the user links to in the bundle."""
        s = self.snapshot
        u = s.users.get(user)
        a = s.user_attributes
        if u is None or a is None:
            return frozenset()
        return frozenset(s.attributes.ids[j] for j in a.indices[a.indptr[u]:a.indptr[u + 1]].tolist())

    # -- masks -----------------------------------------------------------------------------
    def _indices(self, ids: Collection[str]) -> np.ndarray:
        get = self.snapshot.items.get
        return np.fromiter((j for j in map(get, ids) if j is not None), dtype=np.int64)

    def _allowed(self, tags: Collection[str], not_tags: Collection[str], hidden: Collection[str]) -> np.ndarray:
        """Items that pass the tag filters and are not hidden (unknown tag ids match nothing)."""
        n = len(self.snapshot.items)
        ok = np.ones(n, dtype=bool)
        if tags:
            ok[:] = False
            ok[self._carrying(tags)] = True
        if not_tags:
            ok[self._carrying(not_tags)] = False
        ok[self._indices(hidden)] = False
        return ok

    def _carrying(self, tags: Collection[str]) -> np.ndarray:
        cols = [t for t in (self.snapshot.tags.get(x) for x in tags) if t is not None]
        m = self._tag_items
        return np.concatenate([m.indices[m.indptr[t]:m.indptr[t + 1]] for t in cols] or [np.zeros(0, np.int32)])

    # -- recommend -------------------------------------------------------------------------
    def recommend(self, q: Query, state: UserState = BUNDLE_ONLY) -> list[Served]:
        """Top-k for ``q.user`` (see the module docstring for the order of work)."""
        return self.decide(q, state).served

    def decide(self, q: Query, state: UserState = BUNDLE_ONLY) -> Decision:
        """``recommend``, with the pool the policy drew from (``recommenders.serving.policies``):
        items the user skipped are masked first (``learn``, ``explore``), then come back when too
        few others remain; each served item carries the probability of its slot."""
        spec = policy_spec(q.policy or self.default_policy)
        s = self.snapshot
        u = s.users.get(q.user)
        history = state.history
        seen = self._indices(history) if history is not None else (s.user_items(u) if u is not None else None)
        disliked = state.disliked if state.disliked is not None else self.bundle_dislikes(q.user)
        hidden = state.hidden if state.hidden is not None else s.hidden
        ok = self._allowed(q.tags, q.not_tags, hidden)
        ok[self._indices(q.exclude)] = False
        ok[self._indices(disliked)] = False
        if seen is not None:
            ok[seen] = False
        if q.near is not None:
            ok &= near_mask(s, q.near, q.radius_km)
        match = self._texts.get().scores(q.q) if q.q is not None else None
        if match is not None:
            ok &= match > 0
        folded = None if history is None else with_dislikes(history, disliked)
        skipped = self._indices(suppressed(state.skipped, spec))
        allowed = ok.copy()
        allowed[skipped] = False
        need = max(q.k, spec.candidates) if spec.explores else q.k
        need = need if match is None else max(need, POOL)
        picked = self._walk(q, u is None, folded, allowed, need, state.attributes)
        if len(picked) < q.k and len(skipped):  # nothing else left: what the user passed over comes back
            ok[self._indices([r.item_id for r in picked])] = False
            picked += self._walk(q, u is None, folded, ok, q.k - len(picked), state.attributes)
        if match is not None:
            picked = rerank(picked, match, s)
        slate, logits = draw(picked, spec, q.k, q.seed)
        chosen = [picked[j] for j in slate.idx.tolist()]
        served = [Served(r.item_id, self.title(r.item_id), r.score, rank, r.source, propensity=float(p),
                         explored=bool(e), exploration=probe_text(s, r.item_id, state.shown) if e else None)
                  for rank, (r, p, e) in enumerate(zip(chosen, slate.propensity, slate.explored, strict=True), 1)]
        if q.explain:
            tops = self._explain_served(q.user, chosen, history, state.attributes)
            if q.q is not None:
                tops = self._with_query_reasons(q.q, tops, {r.item_id: r.score for r in chosen})
            served = [replace(x, reasons=tops[x.item].reasons, reasons_omitted=tops[x.item].omitted,
                              omitted_contribution=tops[x.item].omitted_contribution) for x in served]
        return Decision(served, spec, tuple(r.item_id for r in picked), tuple(logits.tolist()))

    def _walk(self, q: Query, anonymous_user: bool, folded: Mapping[str, float] | None, ok: np.ndarray,
              need: int, attributes: frozenset[str] | None = None) -> list[Recommendation]:
        """``need`` candidates source by source under the mask ``ok`` (which they join)."""
        picked: list[Recommendation] = []
        for source in self.order(q.model, q.fallback):
            if len(picked) >= need or not ok.any():  # no allowed item left: no source can add one
                break
            found = self._candidates(source, q.user, folded, need - len(picked), ok, q.at, attributes)
            picked += found
            ok[self._indices([r.item_id for r in found])] = False
        if len(picked) < need and q.fallback and self.anonymous is not None and anonymous_user:
            anonymous = self.models[self.anonymous]
            assert isinstance(anonymous, RecommendsAnonymously)  # __init__ picked it for that ability
            scores = anonymous.anonymous_scores()
            picked += self._top(scores, ok, need - len(picked), True, self.anonymous)
        return picked

    def _candidates(self, source: str, user: str, history: Mapping[str, float] | None, need: int,
                    ok: np.ndarray, at: tuple[float, float] | None = None,
                    attributes: frozenset[str] | None = None) -> list[Recommendation]:
        rec = self.models[source]
        scores = None
        if isinstance(rec, ScoresProfiles) and self._by_profile(user, history, attributes):
            got = rec.score_profile(*self._profile_of(user, history, attributes))
            return [] if got is None else self._top(got, ok, need, rec.positive_only, source)
        if at is not None and isinstance(rec, ScoresFromPlace) and (got := rec.score_from_place(user, *at)) is not None:
            return self._top(got, ok, need, rec.positive_only, source)
        if history is not None and isinstance(rec, FoldsInHistory):
            scores = rec.score_history(history)
        if scores is None and isinstance(rec, ScoresAllItems) and user in self.snapshot.users:
            scores = rec.score_user(user)
        if scores is not None:
            positive = rec.positive_only if isinstance(rec, ScoresAllItems | FoldsInHistory) else True
            return self._top(scores, ok, need, positive, source)
        return self._filtered(rec, user, need, ok, source)

    def _top(self, scores: np.ndarray, ok: np.ndarray, k: int, positive_only: bool,
             source: str) -> list[Recommendation]:
        ids = self.snapshot.items.ids
        return [Recommendation(ids[j], float(scores[j]), source) for j in top_allowed(scores, ok, k, positive_only)]

    def _filtered(self, rec: Recommender, user: str, need: int, ok: np.ndarray, source: str) -> list[Recommendation]:
        """Ranked lists of a model that does not score every item, asked for more until ``need``
        items pass the filters or the model has no more."""
        n_items, get = len(self.snapshot.items), self.snapshot.items.get
        n = need
        while True:
            recs = rec.recommend(user, n)
            kept = [r for r in recs if (j := get(r.item_id)) is not None and ok[j]]
            if len(kept) >= need or len(recs) < n or n >= n_items:
                return [replace(r, source=r.source or source) for r in kept[:need]]
            n = min(n * 4 + need, n_items)

    # -- explain ---------------------------------------------------------------------------
    def _by_profile(self, user: str, history: Mapping[str, float] | None, attributes: frozenset[str] | None) -> bool:
        """Whether a profile model scores this user from the store's state rather than the bundle's."""
        return attributes is not None or history is not None or user not in self.snapshot.users

    def _profile_of(self, user: str, history: Mapping[str, float] | None, attributes: frozenset[str] | None
                    ) -> tuple[frozenset[str], Mapping[str, float]]:
        """The user's attributes and history now: the store's where it was asked, else the bundle's."""
        return (attributes if attributes is not None else self.bundle_attributes(user),
                history if history is not None else self.bundle_history(user))

    def _with_query_reasons(self, text: str, tops: dict[str, TopReasons], scores: Mapping[str, float]
                            ) -> dict[str, TopReasons]:
        """The words each item matches first, then the model's reasons (evidence: the blended score is
        not their sum), at most ``max_reasons`` in all."""
        index, out = self._texts.get(), {}
        for item, top in tops.items():
            found = [*query_reasons(index, self._paths, item, text, scores[item]),
                     *(replace(r, kind="evidence") for r in top.reasons)]
            kept, dropped = found[: self.max_reasons], found[self.max_reasons:]
            out[item] = TopReasons(tuple(kept), top.omitted + len(dropped),
                                   top.omitted_contribution + sum(r.contribution for r in dropped),
                                   top.omitted_magnitude + sum(abs(r.contribution) for r in dropped))
        return out

    def _explain_served(self, user: str, picked: list[Recommendation],
                        history: Mapping[str, float] | None,
                        attributes: frozenset[str] | None = None) -> dict[str, TopReasons]:
        """The strongest ``max_reasons`` reasons of each served item; items of one source are
        explained together (``explain_many`` scores the user once and builds only those)."""
        out: dict[str, TopReasons] = {}
        by_source: dict[str, list[str]] = {}
        for r in picked:
            by_source.setdefault(r.source, []).append(r.item_id)
        for source, items in by_source.items():
            rec = self.models.get(source)
            if rec is None:
                for item in items:
                    out[item] = TopReasons()
            elif isinstance(rec, ScoresProfiles) and self._by_profile(user, history, attributes):
                out.update(zip(items, rec.explain_profile(user, *self._profile_of(user, history, attributes), items,
                                                          self.max_reasons), strict=True))
            elif source == self.anonymous and user not in self.snapshot.users:
                for item in items:
                    out[item] = top_reasons(self._anonymous_reasons(item), self.max_reasons)
            elif history is not None and isinstance(rec, FoldsInHistory):
                for item in items:
                    out[item] = top_reasons(self._history_reasons(rec, user, item, history), self.max_reasons)
            else:
                out.update(zip(items, rec.explain_many(user, items, self.max_reasons), strict=True))
        return out

    def explain(self, user: str, item: str, model: str | None = None,
                state: UserState = BUNDLE_ONLY) -> tuple[str, list[Reason]]:
        """Every reason ``model`` gives for ``item``; a user the bundle never saw (with no history)
        is explained by anonymous popularity, as they were served."""
        name = self.order(model)[0]
        history = state.history
        rec = self.models[name]
        profiler = name if isinstance(rec, ScoresProfiles) else next(
            (m for m in self.chain if isinstance(self.models[m], ScoresProfiles)), None)
        if profiler is not None and (profiler == name or (user not in self.snapshot.users and not history)):
            found = self._profile_reasons(profiler, user, item, history, state.attributes)
            if found or profiler == name:
                return profiler, found
        if user not in self.snapshot.users and not history and self.anonymous is not None:
            return self.anonymous, self._anonymous_reasons(item)
        if history is not None and isinstance(rec, FoldsInHistory):
            return name, self._history_reasons(rec, user, item, history)
        return name, sorted(rec.explain(user, item), key=lambda r: -r.contribution)

    def _profile_reasons(self, name: str, user: str, item: str, history: Mapping[str, float] | None,
                         attributes: frozenset[str] | None) -> list[Reason]:
        """Every reason a profile model gives for ``item`` (none when it does not score it)."""
        rec = self.models[name]
        assert isinstance(rec, ScoresProfiles)  # the caller picked it for that ability
        return list(rec.explain_profile(user, *self._profile_of(user, history, attributes), [item])[0].reasons)

    def _anonymous_reasons(self, item: str) -> list[Reason]:
        i = self.snapshot.items.get(item)
        if i is None or self.anonymous is None:
            return []
        n = int(self._audience[i])
        text = f"{n} people interacted with {self.snapshot.title(i)}; we do not know your taste yet"
        anonymous = self.models[self.anonymous]
        assert isinstance(anonymous, RecommendsAnonymously)  # __init__ picked it for that ability
        own = anonymous.explain_anonymous(item)
        score = own[0].contribution if own else float(n)
        return [self._paths.popular(i, score, text)]

    def _history_reasons(self, rec: Recommender, user: str, item: str, history: Mapping[str, float]) -> list[Reason]:
        """Reasons for an item scored from a folded-in history: the model's own evidence when it
        has some, else its bundle-time paths plus how the user's new items link to the item, all
        marked evidence (the folded-in score is not what those paths add up to)."""
        if isinstance(rec, ExplainsHistory):
            return list(rec.explain_history(history, item))
        paths = [replace(r, kind="evidence") for r in rec.explain(user, item)]
        return paths + self._new_item_links(user, item, history)

    def _new_item_links(self, user: str, item: str, history: Mapping[str, float], limit: int = 3) -> list[Reason]:
        i = self.snapshot.items.get(item)
        if i is None:
            return []
        before = self.bundle_history(user)
        out: list[Reason] = []
        for recent in reversed([x for x in history if x not in before and history[x] > 0]):
            j = self.snapshot.items.get(recent)
            if j is not None and j != i:
                out += self.co_audience().reasons(j, i, limit=1)
            if len(out) >= limit:
                break
        return out[:limit]
