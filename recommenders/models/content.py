"""Content-based: TF-IDF over item tags and title words; serves items nobody has chosen.

Each item is a unit vector over terms (tags, weighted by log(1 + count), and title words
times ``title_weight``), each term scaled by its IDF. A user's profile is the mean of their
items' vectors (weighted by ``interaction_weighting``), and ``score(u, i) = profile · v_i``:
a sum over terms, one reason per term. Because only an item's own tags and title enter its
vector, an item with no interactions at all is scored like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason, TopReasons, Tunable
from kgrec.recommenders.config import AtLeastOne, ModelConfig, NonNegative
from kgrec.recommenders.models.scored import ScoredRecommender
from kgrec.recommenders.models.sparse_rows import (
    csr_restore,
    csr_state,
    interaction_weights,
    ranked_shares,
    weighted_row_sum,
)
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

if TYPE_CHECKING:
    import optuna

WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


@dataclass(frozen=True)
class ContentConfig(ModelConfig):
    title_weight: Annotated[float, NonNegative] = 0.5
    min_df: Annotated[int, AtLeastOne] = 2
    interaction_weighting: Literal["binary", "log", "raw"] = "log"


@register("content", fit_cost=FitCost(nnz=0.02, fixed=0.03), default_rank=8, hybrid_rank=6)
class Content(ScoredRecommender, Tunable):
    Config = ContentConfig
    config: ContentConfig

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        return {"title_weight": trial.suggest_float("title_weight", 0.0, 1.0),
                "min_df": trial.suggest_int("min_df", 1, 5)}

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        self._weights = interaction_weights(snapshot, self.config.interaction_weighting)
        words = [sorted(set(WORD.findall((t or "").lower()))) for t in snapshot.item_titles]
        df: dict[str, int] = {}
        for ws in words:
            for w in ws:
                df[w] = df.get(w, 0) + 1
        self._vocab = sorted(w for w, n in df.items() if n >= self.config.min_df)
        self._n_tags = len(snapshot.tags)
        index = {w: k for k, w in enumerate(self._vocab)}
        rows = [j for j, ws in enumerate(words) for w in ws if w in index]
        cols = [index[w] for ws in words for w in ws if w in index]
        self._title_terms = sp.csr_matrix(
            (np.ones(len(rows)), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
            shape=(len(snapshot.items), len(self._vocab)),
        )

    def _fit(self, snapshot: GraphSnapshot) -> None:
        tags = sp.csr_matrix(snapshot.item_tags, dtype=np.float64, copy=True)
        tags.data = np.log1p(tags.data)
        terms = sp.csr_matrix(sp.hstack([tags, self._title_terms * self.config.title_weight]))
        n = max(1, terms.shape[0])
        df = np.diff(sp.csc_matrix(terms).indptr)
        idf = np.log((1 + n) / (1 + df)) + 1.0
        v = sp.csr_matrix(terms @ sp.diags(idf))
        norms = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        self._vectors = sp.csr_matrix(sp.diags(inv) @ v)
        self._vectors.sort_indices()

    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"vectors": ("items", None)}

    def _state(self) -> dict[str, np.ndarray]:
        return csr_state("vectors", self._vectors)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._vectors = csr_restore("vectors", arrays)

    def _profile(self, u: int) -> np.ndarray | None:
        w = self._weights
        a, b = w.indptr[u], w.indptr[u + 1]
        total = w.data[a:b].sum()
        if total <= 0:
            return None
        return weighted_row_sum(self._vectors, w.indices[a:b], w.data[a:b] / total)

    def _scores(self, u: int) -> np.ndarray | None:
        profile = self._profile(u)
        return None if profile is None else self._vectors @ profile

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _user_terms(self, u: int) -> tuple[np.ndarray | None, np.ndarray, sp.csc_matrix]:
        """The user's profile, items, and those items as term columns (which of your items
        carry each term, and how much), kept for the last user: a served list explains k
        items of one user in a row."""
        return self._per_user(u, lambda: self._terms_of(u))

    def _terms_of(self, u: int) -> tuple[np.ndarray | None, np.ndarray, sp.csc_matrix]:
        w = self._weights
        mine, my_w = w.indices[w.indptr[u] : w.indptr[u + 1]], w.data[w.indptr[u] : w.indptr[u + 1]]
        mine_terms = sp.csc_matrix(sp.diags(my_w) @ self._vectors[mine])
        mine_terms.sort_indices()
        return self._profile(u), mine, mine_terms

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        """One share per term of the item (its weight times the profile's); only the
        ``limit`` largest become Reasons."""
        profile, mine, mine_terms = self._user_terms(u)
        v, snap, paths = self._vectors, self._snap(), self._paths
        if profile is None:
            return TopReasons()
        terms = v.indices[v.indptr[i] : v.indptr[i + 1]]
        all_shares = v.data[v.indptr[i] : v.indptr[i + 1]] * profile[terms]
        nonzero = all_shares != 0
        terms, shares = terms[nonzero], all_shares[nonzero]
        shown, rest = ranked_shares(shares, limit)
        reasons = []
        for t, share in zip(terms[shown].tolist(), shares[shown].tolist(), strict=True):
            a, b = mine_terms.indptr[t], mine_terms.indptr[t + 1]
            j = int(mine[mine_terms.indices[a + int(np.argmax(mine_terms.data[a:b]))]])
            if t < self._n_tags:
                text = f"{snap.title(i)} is tagged {snap.tag_names[t]}, like {snap.title(j)} which you chose"
                reasons.append(paths.shared_tag(u, j, t, i, share, text))
            else:
                word = self._vocab[t - self._n_tags]
                text = f"{snap.title(i)} and {snap.title(j)}, which you chose, both have “{word}” in their titles"
                reasons.append(paths.own_item(u, j, share, text))
        omitted = shares[rest]
        return TopReasons(tuple(reasons), len(rest), float(omitted.sum()), float(np.abs(omitted).sum()))
