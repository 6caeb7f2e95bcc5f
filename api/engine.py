"""What the API serves from: a loaded bundle plus the overlay of recent feedback.

All reads go through here and touch only memory (the bundle's snapshot and fitted
recommenders), so they keep working while the store is down. The fallback chain is walked
per request: the requested model first, then the bundle's fallbacks, each item marked with
the ``source`` that produced it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from api.item_similarity import ItemSimilarity
from api.overlay import InteractionOverlay
from graph.snapshot import GraphSnapshot
from recommenders.base import Reason, Recommendation, Recommender, TopReasons, top_reasons
from recommenders.paths import PathBuilder
from recommenders.scored import ScoredRecommender

#: Non-personalised recommenders, in the order they fill gaps for unknown or cold users.
FALLBACK_ORDER = ("popularity", "content")


@dataclass(frozen=True)
class Served:
    """One recommendation as served: the item, its rank and where it came from."""

    item: str
    title: str | None
    score: float
    rank: int
    source: str
    reasons: tuple[Reason, ...] | None = None
    reasons_omitted: int = 0
    omitted_contribution: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"item": self.item, "title": self.title, "score": self.score,
                             "rank": self.rank, "source": self.source}
        if self.reasons is not None:
            d["reasons"] = [reason_json(r) for r in self.reasons]
            d["reasons_omitted"] = self.reasons_omitted
            d["omitted_contribution"] = self.omitted_contribution
        return d


def reason_json(r: Reason) -> dict[str, Any]:
    """``Reason.to_dict`` without ``dataclasses.asdict``'s deep copies (a hot path when serving)."""
    return {
        "nodes": [{"label": n.label.value, "id": n.id, "name": n.name} for n in r.nodes],
        "rels": [{"type": x.type.value, "forward": x.forward} for x in r.rels],
        "contribution": _finite(r.contribution), "text": r.text, "cypher": r.cypher,
        "params": dict(r.params), "kind": r.kind,
    }


def strongest(reasons: Collection[Reason], limit: int) -> tuple[tuple[Reason, ...], int, float]:
    """The ``limit`` largest contributions, plus how many were left out and what they add up
    to, so shown + omitted still sums to the score (a walk can have hundreds of paths)."""
    ordered = sorted(reasons, key=lambda r: -r.contribution)
    rest = ordered[limit:]
    return tuple(ordered[:limit]), len(rest), _finite(sum(r.contribution for r in rest))


class Engine:
    """Recommend, find similar items and explain, from memory only."""

    def __init__(self, snapshot: GraphSnapshot, models: Mapping[str, Recommender], default_model: str | None = None,
                 overlay: InteractionOverlay | None = None, fingerprint: str | None = None,
                 fallbacks: Collection[str] | None = None, max_reasons: int = 5) -> None:
        if not models:
            raise ValueError("the bundle holds no models")
        if default_model is not None and default_model not in models:
            raise ValueError(f"default model {default_model!r} is not in the bundle ({', '.join(sorted(models))})")
        self.snapshot = snapshot
        self.max_reasons = max_reasons
        self.models = dict(models)
        self.default_model = default_model or _pick_default(self.models)
        self.overlay = overlay or InteractionOverlay()
        self.fingerprint = fingerprint or snapshot.fingerprint
        order = fallbacks if fallbacks is not None else FALLBACK_ORDER
        self.fallbacks = [m for m in order if m in self.models]
        anonymous = [m for m in self.models.values() if callable(getattr(m, "recommend_anonymous", None))]
        self.anonymous: Any = anonymous[-1] if anonymous else None
        self._paths = PathBuilder(snapshot)
        self._similarity = ItemSimilarity(snapshot)
        self._audience = np.bincount(snapshot.interactions.indices, minlength=len(snapshot.items))

    # -- lookups ------------------------------------------------------------------------
    def knows_item(self, item: str) -> bool:
        return item in self.snapshot.items or self.overlay.item(item) is not None

    def knows_user(self, user: str) -> bool:
        return (user in self.snapshot.users or self.overlay.user(user) is not None
                or bool(self.overlay.history(user)))

    def title(self, item: str) -> str | None:
        i = self.snapshot.items.get(item)
        if i is not None:
            return self.snapshot.item_titles[i]
        extra = self.overlay.item(item)
        return extra.get("title") if extra else None

    def audience(self, item: str) -> int:
        """How many users interacted with ``item`` in the bundle."""
        i = self.snapshot.items.get(item)
        return 0 if i is None else int(self._audience[i])

    def history(self, user: str) -> dict[str, float]:
        """The user's interactions: the bundle's, then the overlay's (newer wins)."""
        s = self.snapshot
        out: dict[str, float] = {}
        u = s.users.get(user)
        if u is not None:
            r = s.interactions
            lo, hi = r.indptr[u], r.indptr[u + 1]
            for j, w in zip(r.indices[lo:hi].tolist(), r.data[lo:hi].tolist(), strict=True):
                out[s.items.ids[j]] = float(w)
        out.update(self.overlay.history(user))
        return out

    def model_info(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "additive": bool(getattr(type(m), "additive", True)),
             "default": name == self.default_model, "fallback": name in self.fallbacks,
             "folds_in_feedback": folds_in(m)}
            for name, m in sorted(self.models.items())
        ]

    # -- recommend ----------------------------------------------------------------------
    def recommend(self, user: str, k: int, model: str | None = None, exclude: Collection[str] = (),
                  explain: bool = False) -> list[Served]:
        """Top-k for ``user``: the model, then the fallbacks, then (for users the bundle has
        never seen) anonymous popularity; seen and excluded items never appear."""
        name = model or self.default_model
        recent = self.overlay.history(user)
        banned = set(exclude) | set(recent)
        history = self.history(user) if recent else None
        picked: list[tuple[Recommendation, str]] = []
        taken: set[str] = set()

        def take(recs: list[Recommendation], source: str) -> None:
            for rec in recs:
                if len(picked) == k:
                    return
                if rec.item_id not in banned and rec.item_id not in taken:
                    picked.append((rec, rec.source or source))
                    taken.add(rec.item_id)

        for source in [name, *[f for f in self.fallbacks if f != name]]:
            if len(picked) >= k:
                break
            take(self._candidates(source, user, k - len(picked), banned | taken, history), source)
        if len(picked) < k and self.anonymous is not None and user not in self.snapshot.users:
            take(self.anonymous.recommend_anonymous(k=k - len(picked), exclude=banned | taken),
                 self.anonymous.name)
        tops = self._explain_picked(user, picked, history) if explain else {}
        served = []
        for rank, (rec, source) in enumerate(picked, start=1):
            item = Served(rec.item_id, self.title(rec.item_id), _finite(rec.score), rank, source)
            if explain:
                top = tops[rec.item_id]
                item = replace(item, reasons=top.reasons, reasons_omitted=top.omitted,
                               omitted_contribution=_finite(top.omitted_contribution))
            served.append(item)
        return served

    def _explain_picked(self, user: str, picked: list[tuple[Recommendation, str]],
                        history: dict[str, float] | None) -> dict[str, TopReasons]:
        """The strongest ``max_reasons`` reasons of each served item. Items of one source are
        explained together (``explain_many``: the user is scored once) and only the shown
        reasons are built; the rest are counted and summed."""
        out: dict[str, TopReasons] = {}
        by_source: dict[str, list[str]] = {}
        for rec, source in picked:
            if rec.reasons:
                out[rec.item_id] = top_reasons(rec.reasons, self.max_reasons)
            else:
                by_source.setdefault(source, []).append(rec.item_id)
        for source, items in by_source.items():
            model = self.models.get(source)
            if model is None or (history and folds_in(model)):
                for item in items:
                    out[item] = top_reasons(self._explain_with(source, user, item, history), self.max_reasons)
                continue
            for item, top in zip(items, model.explain_many(user, items, self.max_reasons), strict=True):
                if not top.reasons and not top.omitted and model is self.anonymous \
                        and user not in self.snapshot.users:
                    top = top_reasons(self._audience_reason(item), self.max_reasons)
                out[item] = top
        return out

    def _candidates(self, source: str, user: str, k: int, exclude: set[str],
                    history: dict[str, float] | None) -> list[Recommendation]:
        rec = self.models.get(source)
        if rec is None:
            return []
        if history and folds_in(rec):
            found = list(rec.recommend_from_history(history, k, exclude))
            if found:
                return found
        return list(rec.recommend(user, k, exclude))

    # -- explain ------------------------------------------------------------------------
    def explain(self, user: str, item: str, model: str | None = None) -> tuple[str, list[Reason]]:
        """Reasons ``model`` gives for ``item``; a user the bundle has never seen (and who
        has posted nothing) is explained by anonymous popularity, as they were served."""
        name = model or self.default_model
        recent = self.overlay.history(user)
        history = self.history(user) if recent else None
        if user not in self.snapshot.users and not history and self.anonymous is not None:
            name = self.anonymous.name
        return name, self._explain_with(name, user, item, history)

    def _explain_with(self, source: str, user: str, item: str, history: dict[str, float] | None) -> list[Reason]:
        rec = self.models.get(source)
        if rec is None:
            return []
        if history and folds_in(rec):
            own = getattr(rec, "explain_from_history", None)
            if callable(own):
                return list(own(history, item))
            # The folded-in score is not what the bundle-time paths add up to: show those
            # paths and the new interactions' links to the item as evidence, not as the cause.
            paths = [replace(r, kind="evidence") for r in rec.explain(user, item)]
            return paths + self._feedback_evidence(user, item)
        reasons = list(rec.explain(user, item))
        if not reasons and rec is self.anonymous and user not in self.snapshot.users:
            reasons = self._audience_reason(item)
        return reasons

    def _feedback_evidence(self, user: str, item: str, limit: int = 3) -> list[Reason]:
        """How the user's newest interactions (not in the bundle yet) connect to ``item``."""
        i = self.snapshot.items.get(item)
        if i is None:
            return []
        out: list[Reason] = []
        for recent in reversed(list(self.overlay.history(user))):
            j = self.snapshot.items.get(recent)
            if j is not None and j != i:
                out.extend(self._similarity.reasons(j, i, limit=1))
            if len(out) >= limit:
                break
        return out[:limit]

    def _audience_reason(self, item: str) -> list[Reason]:
        """Why anonymous popularity picked an item: its audience, the one path it has."""
        i = self.snapshot.items.get(item)
        if i is None:
            return []
        n = int(self._audience[i])
        return [self._paths.popular(i, 0.0, f"{n} people interacted with {self.snapshot.title(i)}; "
                                            "we do not know your taste yet")]

    # -- similar items ------------------------------------------------------------------
    def similar(self, item: str, k: int, model: str | None = None, explain: bool = True) -> list[Served]:
        """Items like ``item``: the model's own ``similar_items`` if it has one, else shared audience."""
        rec = self.models.get(model or self.default_model)
        own = getattr(rec, "similar_items", None)
        found: list[Recommendation] | None = None
        if callable(own):
            found = [r for r in own(item, k) if r.item_id != item]
        if not found:
            found = self._item_similarity().similar(item, k, explain)
        elif explain:
            found = [r if r.reasons else self._with_shared_reasons(item, r) for r in found]
        served = []
        for rank, r in enumerate(found[:k], start=1):
            item = Served(r.item_id, self.title(r.item_id), _finite(r.score), rank, r.source or "cooccurrence")
            if explain:
                shown, omitted, rest = strongest(r.reasons, self.max_reasons)
                item = replace(item, reasons=shown, reasons_omitted=omitted, omitted_contribution=rest)
            served.append(item)
        return served

    def _with_shared_reasons(self, item: str, rec: Recommendation) -> Recommendation:
        a, b = self.snapshot.items.get(item), self.snapshot.items.get(rec.item_id)
        if a is None or b is None:
            return rec
        return Recommendation(rec.item_id, rec.score, rec.source, tuple(self._item_similarity().reasons(a, b)))

    def _item_similarity(self) -> ItemSimilarity:
        return self._similarity


def folds_in(rec: Recommender) -> bool:
    """Whether ``rec`` can score a history newer than its fit (``recommend_from_history``)."""
    own = getattr(type(rec), "recommend_from_history", None)
    if own is None:
        return False
    if isinstance(rec, ScoredRecommender) and own is ScoredRecommender.recommend_from_history:
        return type(rec)._history_scores is not ScoredRecommender._history_scores
    return True


def _pick_default(models: Mapping[str, Recommender]) -> str:
    for preferred in ("hybrid", "graph_walk", "itemcf", "popularity"):
        if preferred in models:
            return preferred
    return sorted(models)[0]


def _finite(x: float) -> float:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else 0.0
