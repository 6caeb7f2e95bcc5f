"""Similar items for ``/items/{id}/similar`` when no recommender in the bundle offers them.

Cosine similarity between item columns of the user×item matrix (shared audience), with the
top co-listeners and shared tags as reasons: real paths, each with a constant Cypher query.
"""

from __future__ import annotations

from itertools import zip_longest

import numpy as np
import scipy.sparse as sp

from graph.schema import Label, Rel
from graph.snapshot import GraphSnapshot
from recommenders.base import PathNode, PathRel, Reason, Recommendation

CO_AUDIENCE_CYPHER = (
    "MATCH p = (a:Item {id: $n0})<-[:INTERACTED]-(u:User {id: $n1})-[:INTERACTED]->(b:Item {id: $n2}) RETURN p"
)
SHARED_TAG_CYPHER = "MATCH p = (a:Item {id: $n0})-[:HAS_TAG]->(t:Tag {id: $n1})<-[:HAS_TAG]-(b:Item {id: $n2}) RETURN p"

SOURCE = "cooccurrence"


class ItemSimilarity:
    """Item–item cosine over binarised interactions; scores are cosines in [0, 1]."""

    def __init__(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot
        x = snapshot.interactions.copy().tocsc().astype(np.float32)
        x.data[:] = 1.0
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        self._x = x  # users × items, binary, CSC for fast column access
        self._weights = snapshot.interactions.tocsc()
        self._weights.sort_indices()
        self._xr = x.tocsr()
        self._norms = norms

    def similar(self, item_id: str, k: int, explain: bool = False) -> list[Recommendation]:
        s = self.snapshot
        i = s.items.get(item_id)
        if i is None:
            return []
        col = self._x[:, i]
        scores = np.asarray((self._xr.T @ col).todense()).ravel() / (self._norms * self._norms[i])
        scores[i] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) == 0:
            return []
        top = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        return [
            Recommendation(s.items.ids[j], float(scores[j]), SOURCE, tuple(self.reasons(i, int(j))) if explain else ())
            for j in top
        ]

    def reasons(self, a: int, b: int, limit: int = 3) -> list[Reason]:
        """Up to ``limit`` shared tags (most used first) and ``limit`` shared listeners (those
        who played both the most first) linking items a and b."""
        s = self.snapshot
        by_tag: list[Reason] = []
        by_user: list[Reason] = []
        it: sp.csr_matrix = s.item_tags
        tags_a = it.indices[it.indptr[a]:it.indptr[a + 1]]
        tags_b, count_b = it.indices[it.indptr[b]:it.indptr[b + 1]], it.data[it.indptr[b]:it.indptr[b + 1]]
        common, _, ib = np.intersect1d(tags_a, tags_b, assume_unique=True, return_indices=True)
        for t in common[np.lexsort((common, -count_b[ib]))][:limit].tolist():
            nodes = (_item(s, a), PathNode(Label.TAG, s.tags.ids[t], s.tag_names[t]), _item(s, b))
            by_tag.append(Reason(
                nodes=nodes,
                rels=(PathRel(Rel.HAS_TAG, True), PathRel(Rel.HAS_TAG, False)),
                contribution=0.0,
                text=f"{s.title(a)} and {s.title(b)} share the tag {s.tag_names[t]}",
                cypher=SHARED_TAG_CYPHER,
                params={"n0": nodes[0].id, "n1": nodes[1].id, "n2": nodes[2].id},
                kind="evidence",
            ))
        w = self._weights
        users_a, w_a = w.indices[w.indptr[a]:w.indptr[a + 1]], w.data[w.indptr[a]:w.indptr[a + 1]]
        users_b, w_b = w.indices[w.indptr[b]:w.indptr[b + 1]], w.data[w.indptr[b]:w.indptr[b + 1]]
        shared, ia, ib = np.intersect1d(users_a, users_b, assume_unique=True, return_indices=True)
        strength = np.minimum(w_a[ia], w_b[ib])
        for u in shared[np.lexsort((shared, -strength))][:limit].tolist():
            nodes = (_item(s, a), PathNode(Label.USER, s.users.ids[u]), _item(s, b))
            by_user.append(Reason(
                nodes=nodes,
                rels=(PathRel(Rel.INTERACTED, False), PathRel(Rel.INTERACTED, True)),
                contribution=0.0,
                text=f"User {s.users.ids[u]} chose both {s.title(a)} and {s.title(b)}"
                     f" (one of {len(shared)} people who did)",
                cypher=CO_AUDIENCE_CYPHER,
                params={"n0": nodes[0].id, "n1": nodes[1].id, "n2": nodes[2].id},
                kind="evidence",
            ))
        # alternate the two kinds so the first few shown include both
        mixed = [r for pair in zip_longest(by_tag, by_user) for r in pair if r is not None]
        return mixed


def _item(s: GraphSnapshot, i: int) -> PathNode:
    return PathNode(Label.ITEM, s.items.ids[i], s.item_titles[i])
