"""The one read path: what ``kgrec recommend``, ``kgrec writeback`` and the API serve.

A ``Server`` holds a loaded bundle (snapshot and fitted models); a ``Query`` says what is
asked; a ``UserState`` says what the store knows beyond the bundle (the user's current history
and dislikes, the hidden items: ``recommenders.live`` reads it). The order of a request is:

1. candidates and ranking, source by source: the requested model (or the default), then the
   bundle's fallback order, then anonymous popularity for users the bundle never saw;
2. filtering: the user's items, ``exclude``, their dislikes, hidden items, and the tag
   filters (``tags``: at least one of them; ``not_tags``: none of them) — applied to the whole
   score vector when a model scores every item (``ScoresAllItems``), else to ever longer lists;
3. explanations for the items shown (the strongest ``max_reasons`` paths of each).

A user whose history or dislikes changed since the bundle is scored from that history by
models that fold it in (``FoldsInHistory``, disliked items as negative evidence); the others
keep their bundle-time ranking, filtered. Every item keeps the ``source`` that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import (
    ExplainsHistory,
    FoldsInHistory,
    Reason,
    Recommendation,
    Recommender,
    RecommendsAnonymously,
    ScoresAllItems,
    SimilarItems,
    TopReasons,
    top_reasons,
)
from kgrec.recommenders.bundle.model_bundle import Bundle
from kgrec.recommenders.ranking import top_allowed
from kgrec.recommenders.reason_paths import PathBuilder
from kgrec.recommenders.serving.reason_json import Served
from kgrec.recommenders.serving.similar_items import SOURCE as CO_AUDIENCE
from kgrec.recommenders.serving.similar_items import CoAudience


@dataclass(frozen=True)
class Query:
    """One recommendation request. ``fallback=False`` serves the model's own items only (write-back)."""

    user: str
    k: int = 10
    model: str | None = None
    exclude: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    not_tags: frozenset[str] = frozenset()
    explain: bool = False
    fallback: bool = True


@dataclass(frozen=True)
class UserState:
    """What the store says beyond the bundle. ``history`` is the user's whole current history,
    given only when it (or their dislikes) differs from the bundle's; ``disliked`` and ``hidden``
    are None when the store was not asked, and then the bundle's own are used."""

    history: Mapping[str, float] | None = None
    disliked: frozenset[str] | None = None
    hidden: frozenset[str] | None = None
    known: bool = False


#: Serve from the bundle alone (no store, or the store is unreachable).
BUNDLE_ONLY = UserState()


class Server:
    """Recommend, find similar items and explain from a loaded bundle plus a ``UserState``."""

    def __init__(self, snapshot: GraphSnapshot, models: Mapping[str, Recommender], chain: Sequence[str],
                 default_model: str | None = None, max_reasons: int = 5) -> None:
        if not models:
            raise ValueError("the bundle holds no models")
        chain = [m for m in chain if m in models] or sorted(models)
        if default_model is not None and default_model not in models:
            raise ValueError(f"model {default_model!r} is not in the bundle ({', '.join(sorted(models))})")
        self.snapshot = snapshot
        self.models = dict(models)
        self.chain = chain
        self.default_model = default_model or chain[0]
        self.max_reasons = max_reasons
        anonymous = [m for m in chain if isinstance(self.models[m], RecommendsAnonymously)]
        self.anonymous = anonymous[-1] if anonymous else None
        self._paths = PathBuilder(snapshot)
        self._audience = np.bincount(snapshot.interactions.indices, minlength=len(snapshot.items))
        self._tag_items = sp.csc_matrix(snapshot.item_tags)
        self._co_audience: CoAudience | None = None

    @classmethod
    def from_bundle(cls, bundle: Bundle, default_model: str | None = None, max_reasons: int = 5) -> Server:
        """From a loaded bundle: its models, in the manifest's fallback order."""
        return cls(bundle.snapshot, bundle.models, bundle.fallback, default_model, max_reasons)

    # -- lookups ---------------------------------------------------------------------------
    def order(self, model: str | None = None, fallback: bool = True) -> list[str]:
        """The sources a request walks: the model, then the bundle's chain."""
        name = model or self.default_model
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
        folded = None if history is None else _with_dislikes(history, disliked)
        picked: list[Recommendation] = []
        for source in self.order(q.model, q.fallback):
            if len(picked) >= q.k:
                break
            found = self._candidates(source, q.user, folded, q.k - len(picked), ok)
            picked += found
            ok[self._indices([r.item_id for r in found])] = False
        if len(picked) < q.k and q.fallback and self.anonymous is not None and u is None:
            anonymous = self.models[self.anonymous]
            assert isinstance(anonymous, RecommendsAnonymously)  # __init__ picked it for that ability
            scores = anonymous.anonymous_scores()
            picked += self._top(scores, ok, q.k - len(picked), True, self.anonymous)
        served = [Served(r.item_id, self.title(r.item_id), r.score, rank, r.source)
                  for rank, r in enumerate(picked, start=1)]
        if not q.explain:
            return served
        tops = self._explain_served(q.user, picked, history)
        return [replace(x, reasons=tops[x.item].reasons, reasons_omitted=tops[x.item].omitted,
                        omitted_contribution=tops[x.item].omitted_contribution) for x in served]

    def _candidates(self, source: str, user: str, history: Mapping[str, float] | None, need: int,
                    ok: np.ndarray) -> list[Recommendation]:
        rec = self.models[source]
        scores = None
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
    def _explain_served(self, user: str, picked: list[Recommendation],
                        history: Mapping[str, float] | None) -> dict[str, TopReasons]:
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
        if user not in self.snapshot.users and not history and self.anonymous is not None:
            return self.anonymous, self._anonymous_reasons(item)
        rec = self.models[name]
        if history is not None and isinstance(rec, FoldsInHistory):
            return name, self._history_reasons(rec, user, item, history)
        return name, sorted(rec.explain(user, item), key=lambda r: -r.contribution)

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

    # -- similar items ---------------------------------------------------------------------
    def co_audience(self) -> CoAudience:
        if self._co_audience is None:
            self._co_audience = CoAudience(self.snapshot, self._paths)
        return self._co_audience

    def similar(self, item: str, k: int, model: str | None = None, explain: bool = True,
                tags: Collection[str] = (), not_tags: Collection[str] = (),
                hidden: Collection[str] | None = None) -> list[Served]:
        """Items like ``item``: from the requested (or default) model's own similarity when it has
        one, else from the first model of the chain that has, else shared audience; hidden items
        and items failing the tag filters are never listed."""
        s = self.snapshot
        i = s.items.get(item)
        if i is None:
            return []
        ok = self._allowed(tags, not_tags, s.hidden if hidden is None else hidden)
        ok[i] = False
        found: list[Recommendation] = []
        for name in self.order(model):  # the first model that has its own similarity
            rec = self.models[name]
            if isinstance(rec, SimilarItems):
                found = self._filtered_similar(rec, item, k, ok, name)
                break
        if len(found) < k:
            ok[self._indices([r.item_id for r in found])] = False
            found += self._top(self.co_audience().scores(i), ok, k - len(found), True, CO_AUDIENCE)
        out = []
        for rank, r in enumerate(found, start=1):
            served = Served(r.item_id, self.title(r.item_id), r.score, rank, r.source)
            if explain:
                j = s.items.index[r.item_id]
                top = top_reasons(r.reasons or self.co_audience().reasons(i, j), self.max_reasons)
                served = replace(served, reasons=top.reasons, reasons_omitted=top.omitted,
                                 omitted_contribution=top.omitted_contribution)
            out.append(served)
        return out

    def _filtered_similar(self, rec: SimilarItems, item: str, need: int, ok: np.ndarray,
                          source: str) -> list[Recommendation]:
        n_items, get = len(self.snapshot.items), self.snapshot.items.get
        n = need
        while True:
            recs = rec.similar_items(item, n)
            kept = [replace(r, source=source) for r in recs if (j := get(r.item_id)) is not None and ok[j]]
            if len(kept) >= need or len(recs) < n or n >= n_items:
                return kept[:need]
            n = min(n * 4 + need, n_items)


def _with_dislikes(history: Mapping[str, float], disliked: Collection[str]) -> dict[str, float]:
    """A history for models that fold it in: disliked items as negative evidence, weighted like a
    typical item of the user (the median positive weight), overriding a positive interaction."""
    positive = [w for w in history.values() if w > 0]
    weight = float(np.median(positive)) if positive else 1.0
    return {**history, **dict.fromkeys(disliked, -weight)}


class OwnItems:
    """One model of a ``Server`` as a plain recommender of its own items (no fallback), through
    the read path: the store's dislikes, hidden items and new history apply (write-back)."""

    def __init__(self, server: Server, model: str, state: Callable[[str], UserState] | None = None) -> None:
        server.order(model)  # refuses a model the bundle does not have
        self.server, self.model = server, model
        self._state = state or (lambda _: BUNDLE_ONLY)

    def recommend(self, user_id: str, k: int = 10) -> list[Recommendation]:
        served = self.server.recommend(Query(user_id, k, self.model, fallback=False), self._state(user_id))
        return [Recommendation(s.item, s.score, s.source) for s in served]
