"""HetRec 2011 Last.fm 2K, from its original files.

The files are tab-separated with a header, mixed CRLF/LF line endings; ``tags.dat`` is
Latin-1 and ``artists.dat`` UTF-8. Play counts become interaction weights; tag assignments
become taggings (timestamp: the 1st of their month, UTC, since the ``day`` column is not a
real day) and, aggregated, item tags. Tag rows naming artists absent from ``artists.dat``
are kept: those artists become items with an unknown title, and the report says how many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.loaders.checked_tables import Loaded, LoadReport, RowError, Table, ident, optional_int, weight

FILES = ("artists.dat", "tags.dat", "user_artists.dat", "user_friends.dat", "user_taggedartists.dat")
REQUIRED = "user_artists.dat"


def is_lastfm(path: Path) -> bool:
    return (path / REQUIRED).is_file()


def load(path: str | Path, progress: bool = False) -> Loaded:
    """Parse a HetRec Last.fm 2K directory into records and a report."""
    d = Path(path)
    if not is_lastfm(d):
        raise FileNotFoundError(f"{d}: not a HetRec Last.fm 2K folder (no {REQUIRED})")
    report = LoadReport("lastfm-2k", progress=progress)
    recs = GraphRecords()

    if (d / "artists.dat").is_file():
        recs.items = list(
            Table(d / "artists.dat", report).parse(_artist, key=lambda i: i.id, ncols=4)
        )
    if (d / "tags.dat").is_file():
        recs.tags = list(
            Table(d / "tags.dat", report, encoding="latin-1").parse(_tag, key=lambda t: t.id, ncols=2)
        )
    recs.interactions = list(
        Table(d / "user_artists.dat", report).parse(_play, key=lambda r: (r.user, r.item), ncols=3)
    )
    if (d / "user_taggedartists.dat").is_file():
        recs.taggings = list(
            Table(d / "user_taggedartists.dat", report).parse(
                _tagging_parser(), key=lambda r: (r.user, r.item, r.tag), ncols=6
            )
        )
    if (d / "user_friends.dat").is_file():
        recs.follows = list(
            Table(d / "user_friends.dat", report).parse(_friend, key=lambda r: (r.user, r.friend), ncols=2)
        )

    counts = Counter((t.item, t.tag) for t in recs.taggings)
    recs.item_tags = [ItemTag(item, tag, float(n)) for (item, tag), n in counts.items()]
    _complete(recs, report)
    return Loaded(recs, report)


def _complete(recs: GraphRecords, report: LoadReport) -> None:
    """Add referenced-but-undeclared artists, tags and users, and note the quirks."""
    known_items = {i.id for i in recs.items}
    missing_rows: list[Tagging | Interaction] = [t for t in recs.taggings if t.item not in known_items]
    missing_rows += [r for r in recs.interactions if r.item not in known_items]
    missing = sorted({r.item for r in missing_rows}, key=_numeric)
    recs.items.extend(Item(a, None) for a in missing)
    if missing:
        report.notes.append(
            f"{len(missing):,} artists referenced by {len(missing_rows):,} rows are absent from artists.dat; "
            "kept as items with an unknown title"
        )
    known_tags = {t.id for t in recs.tags}
    unknown_tags = sorted({t.tag for t in recs.taggings if t.tag not in known_tags}, key=_numeric)
    recs.tags.extend(Tag(t, t) for t in unknown_tags)
    if unknown_tags:
        report.notes.append(f"{len(unknown_tags):,} tag ids are absent from tags.dat; kept with their id as name")

    users: dict[str, None] = {}
    for r in recs.interactions:
        users.setdefault(r.user)
    for t in recs.taggings:
        users.setdefault(t.user)
    for f in recs.follows:
        users.setdefault(f.user)
        users.setdefault(f.friend)
    recs.users = [User(u) for u in sorted(users, key=_numeric)]

    pairs = {(f.user, f.friend) for f in recs.follows}
    mutual = sum(1 for a, b in pairs if (b, a) in pairs)
    if pairs:
        report.notes.append(
            f"{len(pairs):,} friendship rows loaded as directed FOLLOWS; {mutual:,} of them have their reverse "
            f"({'fully symmetric' if mutual == len(pairs) else 'not fully symmetric'})"
        )


def _numeric(x: str) -> tuple[int, str]:
    return (int(x), x) if x.isdigit() else (1 << 62, x)


def _artist(f: list[str]) -> Item:
    url = f[2].strip()
    return Item(ident(f[0], "artist id"), f[1], {"url": url} if url else {})


def _tag(f: list[str]) -> Tag:
    return Tag(ident(f[0], "tag id"), f[1])


def _play(f: list[str]) -> Interaction:
    return Interaction(ident(f[0], "user id"), ident(f[1], "artist id"), weight(f[2], "play count"))


def _friend(f: list[str]) -> Follow:
    user, friend = ident(f[0], "user id"), ident(f[1], "friend id")
    if user == friend:
        raise RowError("self_loop", f"user {user} lists themself as a friend")
    return Follow(user, friend, 1.0)


def _tagging_parser() -> Callable[[list[str]], Tagging]:
    """A row parser for user_taggedartists.dat that computes each month's timestamp once."""
    stamps: dict[tuple[str, str], int | None] = {}

    def month_start(month_text: str, year_text: str) -> int | None:
        month, year = optional_int(month_text, "month"), optional_int(year_text, "year")
        if month is None or year is None:
            return None
        if not (1 <= month <= 12 and 1 <= year <= 9999):
            raise RowError("date", f"month {month}, year {year}")
        return int(datetime(year, month, 1, tzinfo=UTC).timestamp())

    def parse(f: list[str]) -> Tagging:
        key = (f[4], f[5])
        ts = stamps[key] if key in stamps else stamps.setdefault(key, month_start(*key))
        return Tagging(ident(f[0], "user id"), ident(f[1], "artist id"), ident(f[2], "tag id"), ts)

    return parse
