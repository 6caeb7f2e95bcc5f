"""Synthetic rating graphs with planted biases, taste factors and (optionally) trust.

A user's rating of an item is ``mid + b_u + b_i + scale·⟨p_u, q_i⟩ + noise``, rounded to the
scale's half steps and clipped to it. Users belong to taste communities: ``p_u`` is
``√w`` × their community's centroid plus ``√(1−w)`` × their own part (``w`` =
``community_weight``). With ``trust="informative"`` a share of users follows a few others,
``homophily`` of them in their own community, so whom you follow says something about your
taste; ``trust="random"`` keeps the same followers and out-degrees but draws whom they follow
uniformly, so it says nothing. Activity is heavy-tailed: many users rate only a few items, which
is where trust can help. Everything comes from one seed; ``truth`` holds what was planted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, User


@dataclass
class PlantedRatings:
    records: GraphRecords
    user_bias: dict[str, float]
    item_bias: dict[str, float]
    #: user id, item id, rating (as stored) and the noiseless value, for every rating
    rows: list[tuple[str, str, float, float]]
    low: float
    high: float


def planted_ratings(users: int = 300, items: int = 200, k: int = 4, communities: int = 8,
                    community_weight: float = 0.8, mean_ratings: float = 30.0, min_ratings: int = 3,
                    bias_sd: float = 0.4, factor_scale: float = 0.8, noise: float = 0.3,
                    low: float = 1.0, high: float = 5.0, trust: str | None = None, trust_share: float = 0.5,
                    mean_trust: float = 3.0, homophily: float = 0.9, as_weights: bool = False,
                    seed: int = 0) -> PlantedRatings:
    """See the module doc; ``as_weights`` stores ratings as interaction weights (no rating
    property), as ``kgrec load csv`` does with a ratings file."""
    if trust not in (None, "informative", "random"):
        raise ValueError(f"trust must be None, 'informative' or 'random', got {trust!r}")
    rng = np.random.default_rng(seed)
    comm = rng.integers(communities, size=users)
    centroids = rng.normal(size=(communities, k))
    p = np.sqrt(community_weight) * centroids[comm] + np.sqrt(1 - community_weight) * rng.normal(size=(users, k))
    q = rng.normal(size=(items, k))
    bu, bi = bias_sd * rng.normal(size=users), bias_sd * rng.normal(size=items)
    counts = np.clip(rng.lognormal(np.log(mean_ratings) - 0.5, 1.0, size=users).astype(int), min_ratings, items // 2)
    pop = rng.lognormal(0.0, 1.0, size=items)
    pop /= pop.sum()
    uid = [f"u{n:04d}" for n in range(users)]
    iid = [f"i{n:04d}" for n in range(items)]
    mid = (low + high) / 2
    recs = GraphRecords(users=[User(u) for u in uid], items=[Item(i, f"item {i}") for i in iid])
    rows = []
    for u in range(users):
        for i in rng.choice(items, size=counts[u], replace=False, p=pop):
            clean = mid + bu[u] + bi[i] + factor_scale / np.sqrt(k) * float(p[u] @ q[i])
            rating = float(np.clip(np.round((clean + noise * rng.normal()) * 2) / 2, low, high))
            rows.append((uid[u], iid[i], rating, clean))
            recs.interactions.append(Interaction(uid[u], iid[i], rating if as_weights else 1.0,
                                                 None if as_weights else rating, None))
    if trust is not None:
        members = [np.flatnonzero(comm == c) for c in range(communities)]
        edges = []
        for u in range(users):
            if rng.random() >= trust_share:
                continue
            for _ in range(int(rng.geometric(1.0 / mean_trust))):
                v = int(rng.choice(members[comm[u]])) if rng.random() < homophily else int(rng.integers(users))
                if v != u:
                    edges.append((u, v))
        if trust == "random":
            other = np.random.default_rng(seed + 1)
            edges = [(u, int((u + other.integers(1, users)) % users)) for u, _ in edges]
        recs.follows = list({(uid[u], uid[v]): Follow(uid[u], uid[v], 1.0) for u, v in edges}.values())
    return PlantedRatings(recs, dict(zip(uid, bu.tolist(), strict=True)), dict(zip(iid, bi.tolist(), strict=True)),
                          rows, low, high)


def split_rows(rows: list[tuple[str, str, float, float]], fraction: float = 0.2,
               seed: int = 42) -> tuple[list[int], list[int]]:
    """A per-user random holdout (row indices: train, test); every user keeps one rating."""
    rng = np.random.default_rng(seed)
    by_user: dict[str, list[int]] = {}
    for n, (u, *_) in enumerate(rows):
        by_user.setdefault(u, []).append(n)
    train, test = [], []
    for ns in by_user.values():
        ns = [ns[j] for j in rng.permutation(len(ns))]
        m = min(len(ns) - 1, round(fraction * len(ns)))
        test += ns[:m]
        train += ns[m:]
    return sorted(train), sorted(test)


def records_of(planted: PlantedRatings, keep: list[int]) -> GraphRecords:
    """The planted graph with only the ratings in ``keep`` (a training part)."""
    rows = set(keep)
    recs = planted.records
    return GraphRecords(users=recs.users, items=recs.items, follows=recs.follows,
                        interactions=[x for n, x in enumerate(recs.interactions) if n in rows])
