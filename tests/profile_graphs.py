"""Graphs whose users have profiles (age, gender, occupation, zip) that decide part of their taste.

``planted_profiles``: a small graph for the tests, where a user's occupation and gender decide
which genre they mostly choose (a strong, known signal: the profile recommender must find it for
users it never saw). ``movielens_like``: the shape of MovieLens 100K (943 users, 1,682 movies,
about 100,000 interactions, its age, gender, occupation and zip mix), where the profile explains
only a little of the taste, as in the real data: popularity within the user's gender × age band
is calibrated to about 1.07× global popularity's NDCG@10 for newcomers, as measured on a real
movie dataset with profiles. Both go through ``add_attribute_records``, as a loader's users do.
Everything is seeded: the same arguments give the same graph.
"""

from __future__ import annotations

import numpy as np

from kgrec.graph.records import GraphRecords, Interaction, Item, ItemTag, Tag, User
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.graph.user_attributes import add_attribute_records

GENRES = ("action", "comedy", "drama", "romance", "thriller", "sci-fi", "horror", "children", "documentary",
          "musical", "war", "western", "crime", "mystery", "animation", "fantasy", "film-noir", "adventure")
#: MovieLens 100K's occupations and how many of its 943 users have each.
OCCUPATIONS = {"student": 196, "other": 105, "educator": 95, "administrator": 79, "engineer": 67, "programmer": 66,
               "librarian": 51, "writer": 45, "executive": 32, "scientist": 31, "artist": 28, "technician": 27,
               "marketing": 26, "entertainment": 18, "healthcare": 16, "retired": 14, "lawyer": 12,
               "salesman": 12, "none": 9, "homemaker": 7, "doctor": 7}
WORDS = ("Dark", "Silent", "Golden", "Midnight", "Lost", "Wild", "Broken", "Last", "Secret", "Blue", "Iron", "Lucky")
NOUNS = ("City", "River", "Heart", "Road", "Storm", "Garden", "Empire", "Dream", "Island", "Song", "Game", "Night")


def planted_profiles(users: int = 240, items: int = 160, per_user: int = 12, seed: int = 11) -> GraphRecords:
    """Occupation (four of them) and gender pick one of eight genres; each user takes ~85 % of
    their items from their genre, by popularity, the rest from everything by popularity."""
    rng = np.random.default_rng(seed)
    occupations = ("engineer", "artist", "doctor", "student")
    rec = GraphRecords()
    genre_of = np.arange(items) % 8
    rng.shuffle(genre_of)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    pop = pop[rng.permutation(items)]
    rec.tags = [Tag(f"genre:{g}", g, "genre") for g in GENRES[:8]]
    for j in range(items):
        rec.items.append(Item(f"m{j:03d}", _title(j)))
        rec.item_tags.append(ItemTag(f"m{j:03d}", f"genre:{GENRES[genre_of[j]]}"))
    for n in range(users):
        occ, gender = n % 4, (n // 4) % 2
        rec.users.append(User(f"p{n:03d}", {"age": int(rng.integers(18, 70)), "gender": "MF"[gender],
                                            "occupation": occupations[occ], "zip": f"{rng.integers(0, 10)}0000"}))
        genre = occ * 2 + gender
        local = np.where(genre_of == genre, pop, 0.0)
        p = 0.85 * local / local.sum() + 0.15 * pop / pop.sum()
        for j in rng.choice(items, size=per_user, replace=False, p=p):
            rec.interactions.append(Interaction(f"p{n:03d}", f"m{j:03d}", 1.0, None, 1_600_000_000 + n))
    add_attribute_records(rec)
    return rec


def movielens_like(users: int = 943, items: int = 1682, mean_items: float = 106.0, seed: int = 100,
                   taste: float = 0.8, group: float = 0.32, individual: float = 1.0, zipf: float = 0.7) -> GraphRecords:
    """MovieLens 100K's shape. A user's log-odds for a movie: its popularity, plus their taste
    over its genres (``taste`` × (``group`` × the effects of their age band, gender and occupation
    + ``individual`` × their own)), plus a small item-level effect of their age band and occupation."""
    rng = np.random.default_rng(seed)
    n_g = len(GENRES)
    genres = np.zeros((items, n_g))
    for j in range(items):
        genres[j, rng.choice(n_g, size=int(rng.integers(1, 4)), replace=False)] = 1.0
    genres /= genres.sum(axis=1, keepdims=True)
    log_pop = -zipf * np.log(np.arange(1, items + 1))[rng.permutation(items)]
    occ_names = list(OCCUPATIONS)
    occ_p = np.array(list(OCCUPATIONS.values()), dtype=float)
    occ_p /= occ_p.sum()
    ages = np.clip(rng.gamma(9.0, 3.8, size=users), 7, 73).astype(int)
    gender = (rng.random(users) < 0.29).astype(int)
    occ = rng.choice(len(occ_names), size=users, p=occ_p)
    occ[ages < 22] = np.where(rng.random(int((ages < 22).sum())) < 0.8, occ_names.index("student"), occ[ages < 22])
    band = np.searchsorted([18, 25, 35, 45, 55], ages, side="right")
    effects = {"band": rng.normal(size=(6, n_g)), "gender": rng.normal(size=(2, n_g)) * 1.3,
               "occ": rng.normal(size=(len(occ_names), n_g))}
    item_fx = {"band": rng.normal(size=(6, items)) * 0.25 * group / 0.16,
               "occ": rng.normal(size=(len(occ_names), items)) * 0.25 * group / 0.16}
    counts = np.clip(rng.lognormal(np.log(mean_items) - 0.45, 0.95, size=users), 20, 700).astype(int)
    rec = GraphRecords()
    rec.tags = [Tag(f"genre:{g}", g, "genre") for g in GENRES]
    for j in range(items):
        rec.items.append(Item(f"movie{j:04d}", _title(j)))
        for g in np.flatnonzero(genres[j]):
            rec.item_tags.append(ItemTag(f"movie{j:04d}", f"genre:{GENRES[g]}"))
    for u in range(users):
        uid = f"user{u:04d}"
        rec.users.append(User(uid, {"age": int(ages[u]), "gender": "MF"[gender[u]],
                                    "occupation": occ_names[occ[u]], "zip": f"{rng.integers(0, 10)}{u % 10}123"}))
        pref = taste * (group * (effects["band"][band[u]] + effects["gender"][gender[u]] + effects["occ"][occ[u]])
                        + individual * rng.normal(size=n_g)) * 3.0
        logits = log_pop + genres @ pref + item_fx["band"][band[u]] + item_fx["occ"][occ[u]]
        chosen = np.argsort(-(logits + rng.gumbel(size=items)))[: min(int(counts[u]), items)]
        for j in chosen.tolist():
            rec.interactions.append(Interaction(uid, f"movie{j:04d}", 1.0, float(rng.integers(1, 6)),
                                                880_000_000 + int(rng.integers(0, 10**7))))
    add_attribute_records(rec)
    return rec


def _title(j: int) -> str:
    return f"{WORDS[j % len(WORDS)]} {NOUNS[(j // len(WORDS)) % len(NOUNS)]} {j}"


def planted_snapshot() -> GraphSnapshot:
    return build_snapshot(planted_profiles())
