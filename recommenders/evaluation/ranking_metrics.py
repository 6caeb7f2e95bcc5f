"""Ranking metrics at k and beyond-accuracy metrics over whole recommendation lists.

Per-user metrics take a ranked list of item indices and the set of relevant (held-out)
item indices, with binary relevance. They follow the usual definitions:

- NDCG@k: DCG = Σ 1/log2(rank + 1) over hits (rank from 1), divided by the DCG of an ideal
  list with min(|relevant|, k) hits.
- Recall@k = hits / |relevant|; Precision@k = hits / k; HR@k = 1 if any hit.
- AP@k = Σ over hit ranks r of Precision@r, divided by min(|relevant|, k); MAP is its mean.
- RR@k = 1 / rank of the first hit (0 without a hit); MRR is its mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

ACCURACY = ("ndcg", "recall", "precision", "hr", "map", "mrr")


def _hits(ranked: Sequence[int], relevant: set[int], k: int) -> np.ndarray:
    return np.array([item in relevant for item in list(ranked)[:k]], dtype=bool)


def _discounts(k: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..k: the one NDCG discount every function here uses."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """NDCG@k of one ranked list against a set of relevant items."""
    return float(ndcg_of_lists([np.asarray(list(ranked), dtype=np.int64)], [np.asarray(sorted(relevant))], k)[0])


def ndcg_of_lists(ranked: Sequence[np.ndarray], relevant: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-user NDCG@k of ranked item arrays against sorted arrays of relevant items."""
    discounts = _discounts(k)
    out = np.zeros(len(ranked))
    for n, (items, rel) in enumerate(zip(ranked, relevant, strict=True)):
        if len(rel) == 0:
            continue
        hits = np.isin(items[:k], rel)
        out[n] = discounts[: len(hits)][hits].sum() / discounts[: min(len(rel), k)].sum()
    return out


def recall_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return float(_hits(ranked, relevant, k).sum()) / len(relevant) if relevant else 0.0


def precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return float(_hits(ranked, relevant, k).sum()) / k


def hit_rate_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return float(_hits(ranked, relevant, k).any())


def average_precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    hits = _hits(ranked, relevant, k)
    if not hits.any():
        return 0.0
    precisions = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precisions[hits].sum()) / min(len(relevant), k)


def reciprocal_rank_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    hits = _hits(ranked, relevant, k)
    return 1.0 / (int(np.argmax(hits)) + 1) if hits.any() else 0.0


def accuracy_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> dict[str, float]:
    """All per-user accuracy metrics of one list, keyed as in ``ACCURACY``."""
    return {
        "ndcg": ndcg_at_k(ranked, relevant, k),
        "recall": recall_at_k(ranked, relevant, k),
        "precision": precision_at_k(ranked, relevant, k),
        "hr": hit_rate_at_k(ranked, relevant, k),
        "map": average_precision_at_k(ranked, relevant, k),
        "mrr": reciprocal_rank_at_k(ranked, relevant, k),
    }


def block_ndcg(scores: np.ndarray, relevant: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """NDCG@k of each row's ranking against the row's relevant items (a boolean matrix):
    best first, ties by index, only positive (or, without ``positive_only``, finite) scores
    listed — what ``recommenders.scored.top_k`` serves — for many users at once (validation)."""
    k = min(k, scores.shape[1])
    part = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    top, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
    listed = vals > 0 if positive_only else np.isfinite(vals)
    hits = np.take_along_axis(relevant, top, axis=1) & listed
    discounts = _discounts(k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(relevant.sum(axis=1), k)]
    return np.divide(hits @ discounts, ideal, out=np.zeros(len(scores)), where=ideal > 0)


# -- beyond accuracy ----------------------------------------------------------------------


def catalogue_coverage(lists: Sequence[Sequence[int]], n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    if n_items == 0:
        return 0.0
    shown = {i for lst in lists for i in lst}
    return len(shown) / n_items


def novelty(lists: Sequence[Sequence[int]], item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information −log2(p(i)) of recommended items, p(i) = share of training
    users who interacted with i (an item nobody interacted with counts as one user)."""
    items = np.array([i for lst in lists for i in lst], dtype=np.int64)
    if len(items) == 0 or n_users == 0:
        return float("nan")
    p = np.maximum(item_users[items], 1) / n_users
    return float(np.mean(-np.log2(p)))


def intra_list_diversity(lists: Sequence[Sequence[int]], item_tags: sp.csr_matrix) -> float:
    """1 − mean pairwise cosine of the items' tag vectors, averaged over lists.

    Pairs where an item has no tags carry no information about similarity and are skipped;
    a list with no such pair does not count. NaN when no list has a tagged pair."""
    norms = np.sqrt(np.asarray(item_tags.multiply(item_tags).sum(axis=1)).ravel())
    values = []
    for lst in lists:
        idx = np.array([i for i in lst if norms[i] > 0], dtype=np.int64)
        if len(idx) < 2:
            continue
        vecs = item_tags[idx]
        sims = (vecs @ vecs.T).toarray() / np.outer(norms[idx], norms[idx])
        upper = sims[np.triu_indices(len(idx), k=1)]
        values.append(1.0 - float(upper.mean()))
    return float(np.mean(values)) if values else float("nan")


def personalisation(lists: Sequence[Sequence[int]], k: int, n_items: int) -> float:
    """1 − mean pairwise overlap |A ∩ B| / k between users' lists (1 = all different)."""
    lists = [lst for lst in lists if len(lst)]
    if len(lists) < 2:
        return float("nan")
    rows = np.repeat(np.arange(len(lists)), [len(lst) for lst in lists])
    cols = np.array([i for lst in lists for i in lst], dtype=np.int64)
    x = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(lists), n_items))
    x.data[:] = 1.0
    overlap = (x @ x.T).toarray()
    n = len(lists)
    off_diagonal = (overlap.sum() - np.trace(overlap)) / (n * (n - 1))
    return 1.0 - float(off_diagonal) / k


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2))) if len(actual) else float("nan")


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted) - np.asarray(actual)))) if len(actual) else float("nan")
