"""A synthetic user–item–tag–social graph with planted communities.

Users belong to communities; each community prefers its own items, tags them with its own
tags and befriends its own members, and item popularity follows a power law. The generator
returns the planted ground truth (communities and each user's held-out *future* items,
drawn from the same preferences but kept out of the graph) so tests can check that
personalised recommenders recover the structure better than popularity does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User

GENRES = (
    "jazz", "metal", "folk", "techno", "soul", "punk", "ambient", "reggae", "blues", "opera",
    "grunge", "disco", "salsa", "trance", "gospel", "bluegrass", "dubstep", "swing", "flamenco", "k-pop",
)
MOODS = ("dark", "bright", "slow", "loud", "dreamy", "raw", "smooth", "epic")
ADJECTIVES = ("Velvet", "Iron", "Silent", "Golden", "Electric", "Hollow", "Crimson", "Lunar", "Wild", "Paper")
NOUNS = ("Owls", "Rivers", "Engines", "Ghosts", "Tigers", "Lanterns", "Orchards", "Satellites", "Wolves", "Choir")
FIRST = ("Ada", "Bo", "Chen", "Dara", "Eli", "Femi", "Gia", "Hugo", "Ines", "Jun", "Kai", "Lena", "Mo", "Nia")


@dataclass
class GroundTruth:
    """What the generator planted."""

    user_community: dict[str, int]
    item_community: dict[str, int]
    tag_community: dict[str, int]
    future: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class SyntheticGraph:
    records: GraphRecords
    truth: GroundTruth


def generate(
    users: int = 200,
    items: int = 300,
    seed: int = 42,
    communities: int | None = None,
    per_user: int = 15,
    future_per_user: int = 5,
    in_community: float = 0.85,
    friends_per_user: int = 4,
) -> SyntheticGraph:
    """Generate a planted-structure graph; the same arguments give the same graph."""
    if users < 2 or items < 2:
        raise ValueError("need at least 2 users and 2 items")
    rng = np.random.default_rng(seed)
    c = communities or max(2, min(len(GENRES), users // 25))
    user_comm = rng.integers(0, c, size=users)
    item_comm = np.arange(items) % c
    rng.shuffle(item_comm)
    # Power-law popularity (Zipf-like) over a random order of items.
    pop = 1.0 / np.arange(1, items + 1) ** 0.9
    pop = pop[rng.permutation(items)]

    user_ids = [f"u{i:04d}" for i in range(users)]
    item_ids = [f"i{i:04d}" for i in range(items)]
    recs = GraphRecords()
    for i, uid in enumerate(user_ids):
        recs.users.append(User(uid, {"name": f"{FIRST[i % len(FIRST)]} {i}", "community": int(user_comm[i])}))
    for j, iid in enumerate(item_ids):
        title = f"{ADJECTIVES[j % len(ADJECTIVES)]} {NOUNS[(j // len(ADJECTIVES)) % len(NOUNS)]} {j}"
        recs.items.append(Item(iid, title))

    # Tags: each community owns a genre and two moods-of-genre; one shared noise tag.
    comm_tags: list[list[str]] = []
    tag_comm: dict[str, int] = {}
    for k in range(c):
        genre = GENRES[k % len(GENRES)] + ("" if k < len(GENRES) else f"-{k}")
        own = [f"t-{genre}", f"t-{MOODS[k % len(MOODS)]}-{genre}"]
        comm_tags.append(own)
        for t in own:
            tag_comm[t] = k
            recs.tags.append(Tag(t, t[2:].replace("-", " "), "genre" if t == own[0] else "tag"))
    recs.tags.append(Tag("t-popular", "popular", "tag"))

    for j, iid in enumerate(item_ids):
        k = int(item_comm[j])
        recs.item_tags.append(ItemTag(iid, comm_tags[k][0], 1.0))
        if rng.random() < 0.6:
            recs.item_tags.append(ItemTag(iid, comm_tags[k][1], 1.0))
        if pop[j] > np.quantile(pop, 0.9):
            recs.item_tags.append(ItemTag(iid, "t-popular", 1.0))

    future: dict[str, list[str]] = {}
    members = [np.flatnonzero(user_comm == k) for k in range(c)]
    for i, uid in enumerate(user_ids):
        k = int(user_comm[i])
        local = np.where(item_comm == k, pop, 0.0)
        p = in_community * local / local.sum() + (1 - in_community) * pop / pop.sum()
        n = min(items, per_user + future_per_user)
        picks = rng.choice(items, size=n, replace=False, p=p)
        seen, fut = picks[:per_user], picks[per_user:]
        future[uid] = [item_ids[j] for j in fut]
        for j in seen:
            w = float(1 + rng.poisson(3 if item_comm[j] == k else 1))
            ts = int(1_600_000_000 + rng.integers(0, 10**7))
            recs.interactions.append(Interaction(uid, item_ids[j], w, None, ts))
            if item_comm[j] == k and rng.random() < 0.3:
                tag = comm_tags[k][int(rng.integers(0, 2))]
                recs.taggings.append(Tagging(uid, item_ids[j], tag, int(1_600_000_000 + rng.integers(0, 10**7))))
        mates = members[k][members[k] != i]
        n_friends = min(friends_per_user, len(mates))
        for f in rng.choice(mates, size=n_friends, replace=False) if n_friends else []:
            recs.follows.append(Follow(uid, user_ids[int(f)], 1.0))
        if rng.random() < 0.1:
            other = int(rng.integers(0, users))
            if other != i:
                recs.follows.append(Follow(uid, user_ids[other], 1.0))

    recs.follows = list({(f.user, f.friend): f for f in recs.follows}.values())
    truth = GroundTruth(
        user_community={u: int(user_comm[i]) for i, u in enumerate(user_ids)},
        item_community={it: int(item_comm[j]) for j, it in enumerate(item_ids)},
        tag_community=tag_comm,
        future=future,
    )
    return SyntheticGraph(recs, truth)
