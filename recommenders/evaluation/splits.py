"""Train/test splits of a snapshot that cannot leak held-out pairs through side data.

Every split holds out (user, item) interactions and returns a training snapshot built with
``GraphSnapshot.with_interactions``: the held-out pairs are gone from the interaction
matrix, every tagging (u, i, t) of a held-out (u, i) is dropped (so ``user_tags`` cannot
reveal it), and item-tag counts that were derived from taggings are recounted without
them (when they are). Ratings and timestamps of the kept interactions travel with the training snapshot.
All randomness comes from one seeded generator, so a split is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.evaluation.explicit_ratings import rating_values

SPLITS = ("random", "leave-last", "time")


@dataclass(frozen=True)
class Split:
    """A training snapshot and the held-out items of each evaluated user.

    ``test`` maps a user index to the sorted item indices held out for that user;
    ``test_ratings`` holds (user, item, rating) for held-out pairs that have a rating
    (``recommenders.evaluation.explicit_ratings``: the rating property, or weights on a rating scale).
    """

    name: str
    seed: int
    train: GraphSnapshot
    test: dict[int, np.ndarray]
    test_ratings: np.ndarray

    @property
    def users(self) -> list[int]:
        return sorted(self.test)

    def held_out_pairs(self) -> int:
        return int(sum(len(v) for v in self.test.values()))


RATING_FIELDS = [("user", np.int32), ("item", np.int32), ("rating", np.float32)]


def make_split(
    snapshot: GraphSnapshot, kind: str, *, seed: int = 42, fraction: float = 0.2, min_interactions: int = 5
) -> Split:
    """Dispatch on the split name used by ``kgrec evaluate --split``."""
    if kind == "random":
        return random_holdout(snapshot, fraction=fraction, seed=seed, min_interactions=min_interactions)
    if kind == "leave-last":
        return leave_last_out(snapshot, seed=seed, min_interactions=min_interactions)
    if kind == "time":
        return time_split(snapshot, fraction=fraction, seed=seed, min_interactions=min_interactions)
    raise ValueError(f"unknown split {kind!r}; choose one of {', '.join(SPLITS)}")


def random_holdout(
    snapshot: GraphSnapshot, fraction: float = 0.2, seed: int = 42, min_interactions: int = 5
) -> Split:
    """Per user with at least ``min_interactions``: hold out ``round(fraction * n)`` (≥ 1)
    random interactions. Other users keep all their interactions in training."""
    _check_fraction(fraction)
    m = snapshot.interactions
    rng = np.random.default_rng(seed)
    held = np.zeros(m.nnz, dtype=bool)
    for u in range(m.shape[0]):
        start, end = m.indptr[u], m.indptr[u + 1]
        n = end - start
        if n < max(min_interactions, 2):
            continue
        n_test = min(n - 1, max(1, round(fraction * n)))
        held[start + rng.choice(n, size=n_test, replace=False)] = True
    return _apply(snapshot, held, "random", seed)


def leave_last_out(snapshot: GraphSnapshot, seed: int = 42, min_interactions: int = 5) -> Split:
    """Per user with at least ``min_interactions``: hold out the latest interaction.

    Ties on the timestamp are broken at random (seeded); a missing timestamp counts as
    oldest. A graph without any timestamps cannot be split by time and is refused."""
    m = snapshot.interactions
    ts = snapshot.timestamps
    if m.nnz and not (ts >= 0).any():
        raise ValueError("leave-last needs interaction timestamps; this graph has none (use --split random)")
    rng = np.random.default_rng(seed)
    held = np.zeros(m.nnz, dtype=bool)
    for u in range(m.shape[0]):
        start, end = m.indptr[u], m.indptr[u + 1]
        n = end - start
        if n < max(min_interactions, 2):
            continue
        stamps = ts[start:end]
        latest = np.flatnonzero(stamps == stamps.max())
        held[start + latest[rng.integers(len(latest))]] = True
    return _apply(snapshot, held, "leave-last", seed)


def time_split(snapshot: GraphSnapshot, fraction: float = 0.2, seed: int = 42, min_interactions: int = 5) -> Split:
    """Global cut in time: the latest ``fraction`` of all timestamped interactions is held out.

    Ties at the cut are broken at random (seeded). Held-out pairs of users with fewer than
    ``min_interactions`` in total, or with no interaction before the cut, go back to
    training: those users are not evaluated (the fallback chain is for cold users)."""
    _check_fraction(fraction)
    m = snapshot.interactions
    ts = snapshot.timestamps
    stamped = np.flatnonzero(ts >= 0)
    if m.nnz and len(stamped) == 0:
        raise ValueError("a time split needs interaction timestamps; this graph has none (use --split random)")
    rng = np.random.default_rng(seed)
    n_test = round(fraction * len(stamped))
    order = np.lexsort((rng.random(len(stamped)), ts[stamped]))
    held = np.zeros(m.nnz, dtype=bool)
    held[stamped[order[len(stamped) - n_test :]]] = True
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    train_counts = np.bincount(rows[~held], minlength=m.shape[0])
    too_few = (counts < min_interactions) | (train_counts == 0)
    held &= ~too_few[rows]
    return _apply(snapshot, held, "time", seed)


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")


def _apply(snapshot: GraphSnapshot, held: np.ndarray, name: str, seed: int) -> Split:
    m = snapshot.interactions
    n_users, n_items = m.shape
    rows = np.repeat(np.arange(n_users), np.diff(m.indptr))
    keep = ~held
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=n_users))])
    train_matrix = sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)
    train_matrix.has_sorted_indices = True

    held_codes = rows[held].astype(np.int64) * n_items + m.indices[held]
    tg = snapshot.taggings
    tg_codes = tg["user"].astype(np.int64) * n_items + tg["item"]
    leaked = np.isin(tg_codes, held_codes)
    item_tags = _recount_item_tags(snapshot, tg[leaked]) if leaked.any() else None
    train = snapshot.with_interactions(
        train_matrix,
        tg[~leaked],
        ratings=snapshot.ratings[keep],
        timestamps=snapshot.timestamps[keep],
        item_tags=item_tags,
    )

    test: dict[int, np.ndarray] = {}
    for u in np.unique(rows[held]):
        start, end = m.indptr[u], m.indptr[u + 1]
        test[int(u)] = np.sort(m.indices[start:end][held[start:end]]).astype(np.int64)
    ratings = rating_values(snapshot)  # the rating property, or weights that are ratings
    rated = held & ~np.isnan(ratings)
    test_ratings = np.zeros(int(rated.sum()), dtype=RATING_FIELDS)
    test_ratings["user"] = rows[rated]
    test_ratings["item"] = m.indices[rated]
    test_ratings["rating"] = ratings[rated]
    return Split(name=name, seed=seed, train=train, test=test, test_ratings=test_ratings)


def _recount_item_tags(snapshot: GraphSnapshot, removed: np.ndarray) -> sp.csr_matrix | None:
    """Subtract removed taggings from HAS_TAG counts when those counts come from taggings.

    HAS_TAG counts are taken as derived from taggings when, for at least
    ``DERIVED_SHARE`` of the tagged (item, tag) pairs, the count equals the number of
    taggings (Last.fm-style data). Curated tags (synthetic communities, genres) fail that
    test and are kept unchanged (None). In derived mode an entry whose count reaches zero
    is dropped: only held-out taggings supported it.
    """
    shape = snapshot.item_tags.shape
    tg = snapshot.taggings
    counts = sp.csr_matrix((np.ones(len(tg), dtype=np.float32), (tg["item"], tg["tag"])), shape=shape)
    counts.sum_duplicates()
    tagged = counts.tocoo()
    share = float(np.mean(np.asarray(snapshot.item_tags[tagged.row, tagged.col]).ravel() == tagged.data))
    if share < DERIVED_SHARE:
        return None
    gone = sp.csr_matrix((np.ones(len(removed), dtype=np.float32), (removed["item"], removed["tag"])), shape=shape)
    gone.sum_duplicates()
    it = snapshot.item_tags.tocoo()
    derived = np.asarray(counts[it.row, it.col]).ravel() == it.data
    minus = np.asarray(gone[it.row, it.col]).ravel()
    data = np.where(derived, it.data - minus, it.data)
    alive = data > 0
    out = sp.csr_matrix((data[alive], (it.row[alive], it.col[alive])), shape=shape, dtype=np.float32)
    out.sort_indices()
    return out


#: share of tagged (item, tag) pairs whose HAS_TAG count equals their tagging count, above
#: which HAS_TAG counts are treated as derived from taggings.
DERIVED_SHARE = 0.95
