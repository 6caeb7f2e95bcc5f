"""Last.fm-shaped synthetic graphs at any scale, with ``loaders.synthetic``'s planted structure.

``lastfm_like(scale)`` keeps Last.fm 2K's shape per user and per item — about 49
interactions and 99 taggings per user, 13 directed follows per user (friendships are
symmetric), 6 tags per item, 0.63 tags per item in the vocabulary — and multiplies users,
items and tags by ``scale``. The structure is the planted one of ``loaders.synthetic``:
users and items belong to communities of about 95 users (their number grows with the
graph, as niches do), item popularity is a power law, a user picks 85 % of their items in
their community (weighted by popularity) and the rest from everywhere, tags the community's
items with the community's tags (a Zipf law over them), and befriends mostly members of
their community. Everything is drawn with vectorised numpy from one seed, so a 64× graph
(121k users, 6 M interactions) takes seconds, not the per-user loops of ``generate``.

The result is arrays (``ScaledGraph``), written as the CSV folder format
(``loaders.csv_dir``) so that benchmarks load it the way a user loads their own data
(``kgrec load csv``), or turned into ``GraphRecords`` for small uses.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.loaders.synthetic import ADJECTIVES, GENRES, MOODS, NOUNS

#: Last.fm 2K (HetRec 2011) at scale 1.
LASTFM = {"users": 1892, "items": 18022, "tags": 11946}
INTERACTIONS_PER_USER = 49
TAGGINGS_PER_USER = 98.6
FRIENDS_PER_USER = 6.7  # each friendship is two FOLLOWS: about 13.4 per user
USERS_PER_COMMUNITY = 95
IN_COMMUNITY = 0.85
TS0 = 1_600_000_000


@dataclass
class ScaledGraph:
    """Index arrays of a generated graph; ids are ``u…``, ``i…``, ``t…`` of those indices."""

    users: int
    items: int
    tags: int
    user_community: np.ndarray
    item_community: np.ndarray
    tag_community: np.ndarray
    interactions: np.ndarray  # (user, item, weight, ts)
    taggings: np.ndarray  # (user, item, tag, ts)
    item_tags: np.ndarray  # (item, tag, count)
    follows: np.ndarray  # (user, friend)

    def counts(self) -> dict[str, int]:
        return {"users": self.users, "items": self.items, "tags": self.tags,
                "interactions": len(self.interactions), "taggings": len(self.taggings),
                "item_tags": len(self.item_tags), "follows": len(self.follows)}

    def user_id(self, u: int) -> str:
        return f"u{u:07d}"

    def item_id(self, i: int) -> str:
        return f"i{i:07d}"

    def tag_id(self, t: int) -> str:
        return f"t{t:07d}"

    def item_title(self, i: int) -> str:
        return f"{ADJECTIVES[i % len(ADJECTIVES)]} {NOUNS[(i // len(ADJECTIVES)) % len(NOUNS)]} {i}"

    def tag_name(self, t: int) -> str:
        k = int(self.tag_community[t])
        return f"{MOODS[t % len(MOODS)]} {GENRES[k % len(GENRES)]} {k}-{t}"

    def write_csv(self, directory: str | Path) -> Path:
        """The CSV folder format of ``loaders.csv_dir`` (interactions, items, tags, item_tags,
        taggings, social)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        u, i, t = self.user_id, self.item_id, self.tag_id
        files = {
            "interactions.csv": (("user", "item", "weight", "ts"),
                                 ((u(a), i(b), f"{w:g}", int(s)) for a, b, w, s in self.interactions.tolist())),
            "items.csv": (("item", "title"), ((i(j), self.item_title(j)) for j in range(self.items))),
            "tags.csv": (("tag", "name", "kind"), ((t(j), self.tag_name(j), "tag") for j in range(self.tags))),
            "item_tags.csv": (("item", "tag", "count"),
                              ((i(a), t(b), f"{c:g}") for a, b, c in self.item_tags.tolist())),
            "taggings.csv": (("user", "item", "tag", "ts"),
                             ((u(a), i(b), t(c), int(s)) for a, b, c, s in self.taggings.tolist())),
            "social.csv": (("user", "friend"), ((u(a), u(b)) for a, b in self.follows.tolist())),
        }
        for name, (header, rows) in files.items():
            with (d / name).open("w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows(rows)
        return d

    def snapshot(self) -> GraphSnapshot:
        """``build_snapshot(self.records())`` built from the arrays (same fingerprint), so a
        64× graph needs no objects per row: its ids are zero-padded, so sorted ids are indices."""
        from kgrec.graph import snapshot as gs

        ids = {name: gs.IdIndex.of([fn(j) for j in range(n)])
               for name, fn, n in (("users", self.user_id, self.users), ("items", self.item_id, self.items),
                                   ("tags", self.tag_id, self.tags))}
        nu, ni, nt = self.users, self.items, self.tags
        inter = self.interactions[np.lexsort((self.interactions[:, 1], self.interactions[:, 0]))]
        matrix = gs._csr(inter[:, 0], inter[:, 1], inter[:, 2], (nu, ni))
        tg = np.zeros(len(self.taggings), dtype=gs.TAGGING_FIELDS)
        t = self.taggings[np.lexsort(self.taggings.T[::-1])]
        for k, name in enumerate(("user", "item", "tag", "ts")):
            tg[name] = t[:, k]
        follows = gs._csr(self.follows[:, 0], self.follows[:, 1], np.ones(len(self.follows)), (nu, nu))
        snap = gs.GraphSnapshot(
            users=ids["users"], items=ids["items"], tags=ids["tags"], entities=gs.IdIndex.of([]), predicates=(),
            interactions=matrix, ratings=np.full(len(inter), np.nan, dtype=np.float32),
            timestamps=inter[:, 3].astype(np.int64),
            item_tags=gs._csr(self.item_tags[:, 0], self.item_tags[:, 1], self.item_tags[:, 2], (ni, nt)),
            user_tags=gs._user_tags(tg, nu, nt), follows=follows, taggings=tg,
            facts=np.zeros(0, dtype=gs.FACT_FIELDS),
            item_titles=tuple(self.item_title(j) for j in range(ni)),
            tag_names=tuple(self.tag_name(j) for j in range(nt)), tag_kinds=("tag",) * nt, entity_labels=(),
            user_attrs=({},) * nu, item_attrs=({},) * ni,
        )
        return gs._with_fingerprint(snap)

    def records(self) -> GraphRecords:
        """The same graph as records (for small graphs: one object per row)."""
        u, i, t = self.user_id, self.item_id, self.tag_id
        r = GraphRecords()
        r.users = [User(u(a)) for a in range(self.users)]
        r.items = [Item(i(j), self.item_title(j)) for j in range(self.items)]
        r.tags = [Tag(t(j), self.tag_name(j), "tag") for j in range(self.tags)]
        r.interactions = [Interaction(u(a), i(b), float(w), None, int(s)) for a, b, w, s in self.interactions.tolist()]
        r.taggings = [Tagging(u(a), i(b), t(c), int(s)) for a, b, c, s in self.taggings.tolist()]
        r.item_tags = [ItemTag(i(a), t(b), float(c)) for a, b, c in self.item_tags.tolist()]
        r.follows = [Follow(u(a), u(b), 1.0) for a, b in self.follows.tolist()]
        return r


def lastfm_like(scale: float = 1.0, seed: int = 42) -> ScaledGraph:
    """A graph of ``scale`` × Last.fm 2K's users, items and tags, with its per-user shape."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    users, items, tags = (max(2, round(n * scale)) for n in (LASTFM["users"], LASTFM["items"], LASTFM["tags"]))
    rng = np.random.default_rng(seed)
    c = max(2, users // USERS_PER_COMMUNITY)
    user_comm = rng.integers(0, c, size=users)
    item_comm = rng.permutation(np.arange(items) % c)
    tag_comm = rng.permutation(np.arange(tags) % c)
    pop = (1.0 / np.arange(1, items + 1) ** 0.9)[rng.permutation(items)]

    inter = _interactions(rng, user_comm, item_comm, pop, c)
    taggings = _taggings(rng, inter, user_comm, item_comm, tag_comm, c, round(TAGGINGS_PER_USER * users))
    item_tags = _item_tags(item_comm, tag_comm, taggings, c)
    follows = _follows(rng, user_comm, c)
    return ScaledGraph(users, items, tags, user_comm, item_comm, tag_comm, inter, taggings, item_tags, follows)


def _members(groups: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices sorted by group, each group's start in that order, and its size."""
    order = np.argsort(groups, kind="stable")
    size = np.bincount(groups, minlength=c)
    return order, np.concatenate([[0], np.cumsum(size)[:-1]]), size


def _draw_in_groups(rng: np.random.Generator, group: np.ndarray, order: np.ndarray, start: np.ndarray,
                    size: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """For each entry of ``group``, one member of that group (by ``weights``, else uniform)."""
    if weights is None:
        return order[start[group] + np.minimum((rng.random(len(group)) * size[group]).astype(np.int64),
                                              np.maximum(size[group] - 1, 0))]
    cum = np.cumsum(weights[order])
    before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    total = cum[start + size - 1] - before
    pos = np.searchsorted(cum, before[group] + rng.random(len(group)) * total[group], side="right")
    return order[np.clip(pos, start[group], start[group] + size[group] - 1)]


def _interactions(rng: np.random.Generator, user_comm: np.ndarray, item_comm: np.ndarray, pop: np.ndarray,
                  c: int) -> np.ndarray:
    users, items = len(user_comm), len(item_comm)
    draws = round(INTERACTIONS_PER_USER * 1.6)  # popular items repeat; keep the first 49 distinct
    u = np.repeat(np.arange(users), draws)
    local = rng.random(len(u)) < IN_COMMUNITY
    order, start, size = _members(item_comm, c)
    i = np.empty(len(u), dtype=np.int64)
    i[local] = _draw_in_groups(rng, user_comm[u[local]], order, start, size, pop)
    cum = np.cumsum(pop)
    i[~local] = np.minimum(np.searchsorted(cum, rng.random(int((~local).sum())) * cum[-1], side="right"), items - 1)
    key = np.unique(u * items + i)
    key = key[np.lexsort((rng.random(len(key)), key // items))]  # each user's distinct items, shuffled
    u, i = key // items, key % items
    keep = _first_per_group(u, INTERACTIONS_PER_USER)
    u, i = u[keep], i[keep]
    own = item_comm[i] == user_comm[u]
    w = 1 + rng.poisson(np.where(own, 3, 1))
    ts = TS0 + rng.integers(0, 10**7, size=len(u))
    return np.stack([u, i, w, ts], axis=1).astype(np.int64)


def _first_per_group(groups: np.ndarray, n: int) -> np.ndarray:
    """Mask keeping the first ``n`` entries of each run of equal (sorted) ``groups``."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(groups)) + 1])
    rank = np.arange(len(groups)) - np.repeat(starts, np.diff(np.concatenate([starts, [len(groups)]])))
    return rank < n


def _tag_weights(tag_comm: np.ndarray, c: int) -> np.ndarray:
    """Zipf weights of each tag within its community (the first tags are the common ones)."""
    order, start, _ = _members(tag_comm, c)
    rank = np.empty(len(tag_comm), dtype=np.int64)
    rank[order] = np.arange(len(tag_comm)) - np.repeat(start, np.bincount(tag_comm, minlength=c))
    return 1.0 / (1 + rank) ** 1.1


def _taggings(rng: np.random.Generator, inter: np.ndarray, user_comm: np.ndarray, item_comm: np.ndarray,
              tag_comm: np.ndarray, c: int, n: int) -> np.ndarray:
    own = np.flatnonzero(item_comm[inter[:, 1]] == user_comm[inter[:, 0]])
    rows = inter[own[rng.integers(0, len(own), size=n)]] if len(own) else inter[:0]
    order, start, size = _members(tag_comm, c)
    t = _draw_in_groups(rng, item_comm[rows[:, 1]], order, start, size, _tag_weights(tag_comm, c))
    key = np.unique((rows[:, 0] * len(item_comm) + rows[:, 1]) * len(tag_comm) + t)
    t, ui = key % len(tag_comm), key // len(tag_comm)
    u, i = ui // len(item_comm), ui % len(item_comm)
    ts = TS0 + rng.integers(0, 10**7, size=len(key))
    return np.stack([u, i, t, ts], axis=1).astype(np.int64)


def _item_tags(item_comm: np.ndarray, tag_comm: np.ndarray, taggings: np.ndarray, c: int) -> np.ndarray:
    """How often each (item, tag) was tagged, plus each item's community's first tag (count 1)."""
    items, tags = len(item_comm), len(tag_comm)
    order, start, _ = _members(tag_comm, c)
    curated = np.arange(items) * tags + order[start[item_comm]]
    keys = np.concatenate([taggings[:, 1] * tags + taggings[:, 2], curated])
    key, count = np.unique(keys, return_counts=True)
    return np.stack([key // tags, key % tags, count], axis=1).astype(np.int64)


def _follows(rng: np.random.Generator, user_comm: np.ndarray, c: int) -> np.ndarray:
    users = len(user_comm)
    per = rng.poisson(FRIENDS_PER_USER, size=users)
    u = np.repeat(np.arange(users), per)
    order, start, size = _members(user_comm, c)
    v = _draw_in_groups(rng, user_comm[u], order, start, size, None)
    away = rng.random(len(u)) < 0.1
    v[away] = rng.integers(0, users, size=int(away.sum()))
    pairs = np.concatenate([np.stack([u, v], 1), np.stack([v, u], 1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    key = np.unique(pairs[:, 0] * users + pairs[:, 1])
    return np.stack([key // users, key % users], axis=1).astype(np.int64)
