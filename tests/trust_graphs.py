"""Synthetic graphs with a directed trust network, for the social recommender's tests and
benchmark: the planted-community graph of ``loaders.synthetic`` with its symmetric
friendships replaced by one-way trust.

- ``correlated``: most trust goes to members of your own community (who share your taste),
  the rest anywhere; trusted users are picked in proportion to their activity, so a few
  prolific users are trusted by many (as on review sites).
- ``uncorrelated``: the same number of trust edges per user, to uniformly random users: the
  network says nothing about taste.

Out-degrees are geometric (mean ``mean_trust``), so many users trust one or two people.
"""

from __future__ import annotations

import numpy as np

from kgrec.graph.records import Follow
from kgrec.loaders.synthetic import SyntheticGraph, generate

MODES = ("correlated", "uncorrelated")


def trust_graph(mode: str, users: int = 300, items: int = 400, seed: int = 11, mean_trust: float = 3.0,
                in_community: float = 0.85) -> SyntheticGraph:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    g = generate(users=users, items=items, seed=seed, friends_per_user=0)
    rng = np.random.default_rng(seed + 1)
    ids = [u.id for u in g.records.users]
    community = np.array([g.truth.user_community[u] for u in ids])
    activity = np.bincount([ids.index(x.user) for x in g.records.interactions], minlength=users).astype(float)
    follows = {}
    for i, uid in enumerate(ids):
        n = min(users - 1, int(rng.geometric(1.0 / mean_trust)))
        if mode == "correlated":
            own = (community == community[i]).astype(float)
            p = activity * (in_community * own / own.sum() + (1 - in_community) / users)
        else:
            p = np.ones(users)
        p[i] = 0.0
        for f in rng.choice(users, size=n, replace=False, p=p / p.sum()):
            follows[uid, ids[int(f)]] = Follow(uid, ids[int(f)], 1.0)
    g.records.follows = list(follows.values())
    return g
