"""Items like an item: shared audience when no model of the bundle has its own similarity.

``CoAudience`` is the cosine between item columns of the binarised user×item matrix. Its
reasons, also used to back the similar items a model found (``SimilarItems``), are real
paths: a shared tag ``(a)-[:HAS_TAG]->(t)<-[:HAS_TAG]-(b)`` and a shared listener
``(a)<-[:INTERACTED]-(u)-[:INTERACTED]->(b)``, each with the constant Cypher of
``recommenders.paths`` (``ITEM_SHARED_TAG``, ``ITEM_CO_AUDIENCE``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace
from itertools import zip_longest

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Reason, Recommendation, Recommender, SimilarItems, top_reasons
from kgrec.recommenders.reason_paths import PathBuilder
from kgrec.recommenders.serving.reason_json import Served

#: The ``source`` of similar items found by shared audience.
SOURCE = "cooccurrence"


class CoAudience:
    """Item–item cosine over binarised interactions (scores in [0, 1]) and the paths behind it."""

    def __init__(self, snapshot: GraphSnapshot, paths: PathBuilder | None = None) -> None:
        self.snapshot = snapshot
        self._paths = paths or PathBuilder(snapshot)
        x = sp.csr_matrix(snapshot.interactions, dtype=np.float32, copy=True)
        x.data[:] = 1.0
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        self._x, self._xt = x, sp.csr_matrix(x.T)
        self._norms = norms
        self._weights = sp.csc_matrix(snapshot.interactions)
        self._weights.sort_indices()

    def scores(self, i: int) -> np.ndarray:
        """Cosine of item ``i`` with every item (0 for itself)."""
        a, b = self._xt.indptr[i], self._xt.indptr[i + 1]
        users = self._xt.indices[a:b]
        co = np.asarray(self._x[users].sum(axis=0)).ravel()
        out = co / (self._norms * self._norms[i])
        out[i] = 0.0
        return out

    def reasons(self, a: int, b: int, limit: int = 3) -> list[Reason]:
        """Up to ``limit`` shared tags (most used first) and ``limit`` shared listeners (those who
        chose both the most first), alternating so the first few shown include both kinds."""
        s, p = self.snapshot, self._paths
        it = s.item_tags
        tags_a = it.indices[it.indptr[a]:it.indptr[a + 1]]
        tags_b, count_b = it.indices[it.indptr[b]:it.indptr[b + 1]], it.data[it.indptr[b]:it.indptr[b + 1]]
        common, _, ib = np.intersect1d(tags_a, tags_b, assume_unique=True, return_indices=True)
        by_tag = [
            p.item_shared_tag(a, t, b, 0.0, f"{s.title(a)} and {s.title(b)} share the tag {s.tag_names[t]}")
            for t in common[np.lexsort((common, -count_b[ib]))][:limit].tolist()
        ]
        w = self._weights
        users_a, w_a = w.indices[w.indptr[a]:w.indptr[a + 1]], w.data[w.indptr[a]:w.indptr[a + 1]]
        users_b, w_b = w.indices[w.indptr[b]:w.indptr[b + 1]], w.data[w.indptr[b]:w.indptr[b + 1]]
        shared, ia, ib = np.intersect1d(users_a, users_b, assume_unique=True, return_indices=True)
        strength = np.minimum(w_a[ia], w_b[ib])
        by_user = [
            p.item_co_audience(a, v, b, 0.0, f"User {s.users.ids[v]} chose both {s.title(a)} and {s.title(b)}"
                                             f" (one of {len(shared)} people who did)")
            for v in shared[np.lexsort((shared, -strength))][:limit].tolist()
        ]
        return [r for pair in zip_longest(by_tag, by_user) for r in pair if r is not None]


class SimilarServing:
    """``Server.similar`` and the shared-audience model behind it (a mixin of ``Server``)."""

    snapshot: GraphSnapshot
    models: dict[str, Recommender]
    max_reasons: int
    _paths: PathBuilder
    _co_audience: CoAudience | None
    order: Callable[..., list[str]]
    title: Callable[[str], str | None]
    _allowed: Callable[[Collection[str], Collection[str], Collection[str]], np.ndarray]
    _indices: Callable[[Collection[str]], np.ndarray]
    _top: Callable[[np.ndarray, np.ndarray, int, bool, str], list[Recommendation]]

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
            found += self._top(self.co_audience().scores(i), ok, k - len(found), True, SOURCE)
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

