"""Small check-in graphs with planted cities, for the location tests.

Three cities far apart; each has two neighbourhoods 4 km apart, with places scattered within
300 m of the neighbourhood's centre, each place one of four categories (tags). A user lives in one
neighbourhood of one city: most check-ins are there, a few in the other neighbourhood of the same
city, and their taste favours two categories, which decides which places they visit. Friends are
drawn mostly within the city. Everything is seeded, so a graph is the same in every run.
"""

from __future__ import annotations

import math

import numpy as np

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, User
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot

CITIES = {"paris": (48.8566, 2.3522), "berlin": (52.5200, 13.4050), "austin": (30.2672, -97.7431)}
CATEGORIES = ("cafe", "museum", "park", "bar")
KM_PER_DEG = math.pi * 6371.0088 / 180.0


def offset(lat: float, lon: float, north_km: float, east_km: float) -> tuple[float, float]:
    """The point ``north_km`` north and ``east_km`` east of (lat, lon) (flat-earth, for small offsets)."""
    return lat + north_km / KM_PER_DEG, lon + east_km / (KM_PER_DEG * math.cos(math.radians(lat)))


def neighbourhoods() -> dict[tuple[str, int], tuple[float, float]]:
    """The six neighbourhood centres: 0 at the city's centre, 1 four km east of it."""
    return {(c, n): offset(lat, lon, 0.0, 4.0 * n) for c, (lat, lon) in CITIES.items() for n in (0, 1)}


def planted_cities(users: int = 90, places_per_area: int = 20, visits: int = 14, seed: int = 5,
                   unlocated: int = 3) -> GraphRecords:
    """The records of a planted-cities graph (``unlocated`` extra places have no coordinates)."""
    rng = np.random.default_rng(seed)
    rec = GraphRecords()
    rec.tags = [Tag(f"cat:{c}", c, "category") for c in CATEGORIES]
    by_area: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for (city, n), (lat, lon) in neighbourhoods().items():
        for k in range(places_per_area):
            pid = f"{city}{n}-{k:02d}"
            cat = CATEGORIES[k % len(CATEGORIES)]
            r, a = 0.3 * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
            rec.items.append(Item(pid, f"{cat.title()} {city.title()} {n}.{k}",
                                  location=offset(lat, lon, r * math.sin(a), r * math.cos(a))))
            rec.item_tags.append(ItemTag(pid, f"cat:{cat}"))
            by_area.setdefault((city, n), []).append((pid, cat))
    for k in range(unlocated):
        rec.items.append(Item(f"nowhere-{k}", f"Somewhere {k}"))
    cities = list(CITIES)
    homes: dict[str, tuple[str, int]] = {}
    for u in range(users):
        uid = f"u{u:03d}"
        home = (cities[u % len(cities)], (u // len(cities)) % 2)
        homes[uid] = home
        rec.users.append(User(uid))
        liked = set(rng.choice(CATEGORIES, 2, replace=False).tolist())
        chosen: set[str] = set()
        for _ in range(visits):
            area = home if rng.uniform() < 0.8 else (home[0], 1 - home[1])
            pool = [p for p, c in by_area[area] if c in liked] if rng.uniform() < 0.85 else \
                [p for p, _ in by_area[area]]
            chosen.add(str(rng.choice(pool)))
        for pid in sorted(chosen):
            rec.interactions.append(Interaction(uid, pid, float(rng.integers(1, 6))))
        if u % 10 == 0:
            rec.interactions.append(Interaction(uid, f"nowhere-{u % unlocated}", 1.0))
    ids = sorted(homes)
    for uid in ids:
        same = [v for v in ids if v != uid and homes[v][0] == homes[uid][0]]
        for v in rng.choice(same, 2, replace=False).tolist():
            if uid < v:
                rec.follows.append(Follow(uid, v))
    return rec


def planted_snapshot(**kwargs: int) -> GraphSnapshot:
    return build_snapshot(planted_cities(**kwargs))


def without_coordinates(records: GraphRecords) -> GraphRecords:
    """The same graph with every location dropped."""
    return GraphRecords(users=records.users, items=[Item(i.id, i.title, i.attrs) for i in records.items],
                        tags=records.tags, interactions=records.interactions, item_tags=records.item_tags,
                        follows=records.follows)
