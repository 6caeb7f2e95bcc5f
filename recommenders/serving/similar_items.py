"""Items like an item: shared audience when no model of the bundle has its own similarity.

``CoAudience`` is the cosine between item columns of the binarised user×item matrix. Its
reasons, also used to back the similar items a model found (``SimilarItems``), are real
paths: a shared tag ``(a)-[:HAS_TAG]->(t)<-[:HAS_TAG]-(b)`` and a shared listener
``(a)<-[:INTERACTED]-(u)-[:INTERACTED]->(b)``, each with the constant Cypher of
``recommenders.paths`` (``ITEM_SHARED_TAG``, ``ITEM_CO_AUDIENCE``).
"""

from __future__ import annotations

from itertools import zip_longest

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Reason
from kgrec.recommenders.reason_paths import PathBuilder

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
