"""Check-ins in the Gowalla / LBSN benchmark layout (Liu et al., PVLDB 2017), as in
``../shared/datasets/gowalla-u1000``: tab-separated, no header, files named by suffix.

- ``*_checkins.txt`` (required): ``user, place, timestamp`` (Unix seconds written as a float).
- ``*_poi_coos.txt``: ``place, latitude, longitude`` in WGS-84 degrees: the place's location.
- ``*_social_relations.txt``: ``user, user``, one undirected friendship per row.
- ``*_poi_categories.txt`` (where a dataset has them; gowalla-u1000 does not): ``place, category``.

What the graph gets:

- One INTERACTED per distinct (user, place): ``weight`` = the number of check-ins (exact repeats
  included: the source's own per-pair counts include them), ``ts`` = the latest of them.
- Timestamps as the source defines them: this copy's are 8 hours early (its SOURCE.md, "Time
  zone": the UTC strings were read as UTC+8), so ``ts_offset`` = 28,800 s is added to every one
  to give true UTC epoch seconds; pass 0 for a copy whose stamps are already UTC.
- Places as items (no title) located at their coordinates; a place checked in at without
  coordinates is kept without a location, and noted.
- Friendships only between loaded users (those with check-ins; the file covers a larger set),
  as two FOLLOWS (weight 1), one each way.
- Categories as tags of kind ``category`` (id and name the category text), ``HAS_TAG {count: 1}``.

The same graph comes from ``kgrec load csv`` with ``interactions.csv`` (``user,item,weight,ts``),
``items.csv`` (``item,lat,lon``), ``social.csv`` (both directions), ``tags.csv`` and
``item_tags.csv`` (``tests/test_loaders_gowalla.py`` holds them equal).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, User
from kgrec.loaders.checked_tables import Loaded, LoadReport, RowError, Table, ident, location, optional_int

#: What the files of this layout end with (a dataset prefix, ``Gowalla_``, comes before).
SUFFIXES = {"checkins": "_checkins.txt", "places": "_poi_coos.txt", "social": "_social_relations.txt",
            "categories": "_poi_categories.txt"}
#: Seconds to add to the files' timestamps for true UTC (gowalla-u1000's SOURCE.md, "Time zone").
TS_OFFSET = 28_800


class LayoutError(ValueError):
    """The folder does not hold the layout unambiguously (several files with one suffix)."""


def find_files(d: Path) -> dict[str, Path]:
    """The layout's files in ``d`` by role; FileNotFoundError without check-ins, LayoutError when a
    suffix matches several files."""
    found: dict[str, Path] = {}
    for role, suffix in SUFFIXES.items():
        matches = sorted(p for p in d.glob(f"*{suffix}") if p.is_file())
        if len(matches) > 1:
            raise LayoutError(f"{d}: several {suffix} files ({', '.join(p.name for p in matches)}); keep one")
        if matches:
            found[role] = matches[0]
    if "checkins" not in found:
        raise FileNotFoundError(f"{d}: no *{SUFFIXES['checkins']} (user, place, timestamp; tab-separated)")
    return found


def load(path: str | Path, ts_offset: int = TS_OFFSET, progress: bool = False) -> Loaded:
    """Parse a check-in folder into records and a report."""
    d = Path(path)
    files = find_files(d)
    report = LoadReport(f"checkins:{d.name or d}", progress=progress)
    recs = GraphRecords()

    def checkin(f: list[str]) -> Interaction:
        stamp = optional_int(f[2], "timestamp")
        if stamp is None:
            raise RowError("number", "empty timestamp")
        return Interaction(ident(f[0], "user"), ident(f[1], "place"), 1.0, None, stamp + ts_offset)

    checkins = list(_table(files["checkins"], report).parse(checkin, ncols=3))
    counts = Counter((c.user, c.item) for c in checkins)
    latest: dict[tuple[str, str], int] = {}
    for c in checkins:
        assert c.ts is not None  # checkin() always sets it
        latest[(c.user, c.item)] = max(c.ts, latest.get((c.user, c.item), c.ts))
    recs.interactions = [Interaction(u, i, float(n), None, latest[(u, i)]) for (u, i), n in counts.items()]
    repeats = len(checkins) - len({(c.user, c.item, c.ts) for c in checkins})
    report.notes.append(f"{len(checkins):,} check-ins -> {len(recs.interactions):,} (user, place) pairs; "
                        f"ts = latest check-in + {ts_offset:,} s (UTC)")
    if repeats:
        report.notes.append(f"{repeats:,} check-ins repeat an earlier one exactly (user, place, time); counted")
    users = list(dict.fromkeys(c.user for c in checkins))
    recs.users = [User(u) for u in users]

    if "places" in files:
        def place(f: list[str]) -> Item:
            return Item(ident(f[0], "place"), None, {}, location(f[1], f[2]))

        recs.items = list(_table(files["places"], report).parse(place, key=lambda i: i.id, ncols=3))
    located = {i.id for i in recs.items}
    missing = [i for i in dict.fromkeys(r.item for r in recs.interactions) if i not in located]
    recs.items.extend(Item(i) for i in missing)
    if missing and "places" in files:
        report.notes.append(f"{len(missing):,} places checked in at have no coordinates; kept without a location")
    if "social" in files:
        recs.follows = _friendships(files["social"], report, set(users))
    if "categories" in files:
        _categories(files["categories"], report, recs)
    return Loaded(recs, report)


def _table(path: Path, report: LoadReport) -> Table:
    return Table(path, report, sep="\t", header=False)


def _friendships(path: Path, report: LoadReport, users: set[str]) -> list[Follow]:
    def pair(f: list[str]) -> tuple[str, str]:
        a, b = ident(f[0], "user"), ident(f[1], "user")
        if a == b:
            raise RowError("self_loop", f"{a} is friends with themself")
        return a, b

    rows = list(_table(path, report).parse(pair, ncols=2))
    kept = [(a, b) for a, b in rows if a in users and b in users]
    follows = dict.fromkeys(Follow(x, y) for a, b in kept for x, y in ((a, b), (b, a)))
    report.notes.append(f"{len(kept):,} of {len(rows):,} friendships are between loaded users: "
                        f"{len(follows):,} FOLLOWS (both ways)")
    return list(follows)


def _categories(path: Path, report: LoadReport, recs: GraphRecords) -> None:
    def category(f: list[str]) -> ItemTag:
        name = " ".join(f[1].split())
        if not name:
            raise RowError("empty_id", "empty category")
        return ItemTag(ident(f[0], "place"), name, 1.0)

    recs.item_tags = list(_table(path, report).parse(category, key=lambda x: (x.item, x.tag), ncols=2))
    recs.tags = [Tag(t, t, "category") for t in dict.fromkeys(x.tag for x in recs.item_tags)]
    known = {i.id for i in recs.items}
    recs.items.extend(Item(i) for i in dict.fromkeys(x.item for x in recs.item_tags) if i not in known)
