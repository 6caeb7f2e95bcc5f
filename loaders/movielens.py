"""MovieLens in its three published layouts, detected from the files present.

- 100K: ``u.data`` (tab-separated ratings), ``u.item`` (Latin-1, ``|``-separated, 19 genre
  flags), ``u.user`` (age, gender, occupation, zip).
- 1M: ``ratings.dat`` / ``movies.dat`` / ``users.dat``, ``::``-separated, Latin-1 titles.
- latest-small: ``ratings.csv``, ``movies.csv`` (``|``-separated genres), ``tags.csv`` (user
  taggings), ``links.csv`` (IMDb / TMDb ids).

The rating is both the interaction weight and its ``rating``. The user attributes (age, gender,
occupation, zip) stay on the User node and also give Attribute nodes (age band, gender,
occupation, region from the zip's first character; ``graph.user_attributes``). Genres become tags of kind
``genre`` (id ``genre:<lowercase name>``) with ``HAS_TAG {count: 1}``; free-text tags get the
normalised lowercase string as id and their first spelling as name, and are aggregated into
item tags by how many users applied them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kgrec.graph.records import GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.loaders.checked_tables import (
    Loaded,
    LoadReport,
    RowError,
    Table,
    add_user_attributes,
    ident,
    optional_int,
    weight,
)

LAYOUTS: dict[str, str] = {"100k": "u.data", "1m": "ratings.dat", "latest-small": "ratings.csv"}
NO_GENRE = {"(no genres listed)", "unknown", ""}
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)


def detect(path: Path) -> str | None:
    """The layout name of a MovieLens folder, or None."""
    for name, marker in LAYOUTS.items():
        if (path / marker).is_file():
            return name
    return None


def load(path: str | Path, progress: bool = False) -> Loaded:
    """Parse a MovieLens folder (100K, 1M or latest-small) into records and a report."""
    d = Path(path)
    layout = detect(d)
    if layout is None:
        raise FileNotFoundError(f"{d}: not a MovieLens folder (none of {', '.join(LAYOUTS.values())})")
    report = LoadReport(f"movielens-{layout}", progress=progress)
    recs = GraphRecords()
    genre_tags: dict[str, Tag] = {}
    {"100k": _load_100k, "1m": _load_1m, "latest-small": _load_latest}[layout](d, recs, report, genre_tags)
    recs.tags[:0] = genre_tags.values()
    _complete(recs, report)
    add_user_attributes(recs, report, "user attributes")
    report.notes.insert(0, f"layout: MovieLens {layout}")
    return Loaded(recs, report)


def genre_tag(name: str, tags: dict[str, Tag]) -> str:
    tid = "genre:" + normalise(name)
    tags.setdefault(tid, Tag(tid, name, "genre"))
    return tid


def normalise(tag: str) -> str:
    """A tag's id: lowercase, inner whitespace collapsed."""
    return " ".join(tag.lower().split())


def _rating(f: list[str]) -> Interaction:
    w = weight(f[2], "rating")
    return Interaction(ident(f[0], "user id"), ident(f[1], "movie id"), w, w, optional_int(f[3], "timestamp"))


def _pair(r: Interaction) -> tuple[str, str]:
    return (r.user, r.item)


# -- 100K -----------------------------------------------------------------------------------


def _load_100k(d: Path, recs: GraphRecords, report: LoadReport, genres: dict[str, Tag]) -> None:
    recs.interactions = list(Table(d / "u.data", report, header=False).parse(_rating, key=_pair, ncols=4))
    names = list(GENRES_100K)
    if (d / "u.genre").is_file():
        rows = Table(d / "u.genre", report, sep="|", encoding="latin-1", header=False).parse(
            lambda f: (int(f[1]), f[0]) if f[1].strip().isdigit() else _bad_genre(f), ncols=2
        )
        names = [name for _, name in sorted(rows)] or names
    if (d / "u.item").is_file():
        ncols = 5 + len(names)

        def movie(f: list[str]) -> tuple[Item, list[str]]:
            flags = f[5:]
            if any(x.strip() not in ("0", "1") for x in flags):
                raise RowError("number", "genre flags must be 0 or 1")
            item = Item(ident(f[0], "movie id"), f[1], _attrs(release_date=f[2], imdb_url=f[4]))
            return item, [g for g, x in zip(names, flags, strict=True) if x.strip() == "1"]

        table = Table(d / "u.item", report, sep="|", encoding="latin-1", header=False)
        for item, its_genres in table.parse(movie, key=lambda m: m[0].id, ncols=ncols):
            recs.items.append(item)
            _add_genres(recs, item.id, its_genres, genres)
    if (d / "u.user").is_file():

        def user(f: list[str]) -> User:
            age = optional_int(f[1], "age")
            return User(ident(f[0], "user id"), _attrs(age=age, gender=f[2], occupation=f[3], zip=f[4]))

        table = Table(d / "u.user", report, sep="|", encoding="latin-1", header=False)
        recs.users = list(table.parse(user, key=lambda u: u.id, ncols=5))


def _bad_genre(f: list[str]) -> tuple[int, str]:
    raise RowError("number", f"genre index {f[1]!r} is not an integer")


# -- 1M -------------------------------------------------------------------------------------


def _load_1m(d: Path, recs: GraphRecords, report: LoadReport, genres: dict[str, Tag]) -> None:
    recs.interactions = list(
        Table(d / "ratings.dat", report, sep="::", header=False).parse(_rating, key=_pair, ncols=4)
    )
    if (d / "movies.dat").is_file():
        table = Table(d / "movies.dat", report, sep="::", encoding="latin-1", header=False)
        for item, its_genres in table.parse(_movie_with_genres, key=lambda m: m[0].id, ncols=3):
            recs.items.append(item)
            _add_genres(recs, item.id, its_genres, genres)
    if (d / "users.dat").is_file():

        def user(f: list[str]) -> User:
            occ = optional_int(f[3], "occupation")
            occupation = OCCUPATIONS_1M[occ] if occ is not None and 0 <= occ < len(OCCUPATIONS_1M) else f[3]
            age = optional_int(f[2], "age")
            return User(ident(f[0], "user id"), _attrs(gender=f[1], age=age, occupation=occupation, zip=f[4]))

        table = Table(d / "users.dat", report, sep="::", encoding="latin-1", header=False)
        recs.users = list(table.parse(user, key=lambda u: u.id, ncols=5))


def _movie_with_genres(f: list[str]) -> tuple[Item, list[str]]:
    return Item(ident(f[0], "movie id"), f[1]), [g for g in f[2].split("|") if g.strip() not in NO_GENRE]


# -- latest-small ---------------------------------------------------------------------------


def _load_latest(d: Path, recs: GraphRecords, report: LoadReport, genres: dict[str, Tag]) -> None:
    def table(name: str) -> Table:
        return Table(d / name, report, sep=",", quoted=True)

    recs.interactions = list(table("ratings.csv").parse(_rating, key=_pair, ncols=4))
    links: dict[str, dict[str, str | int | float | bool]] = {}
    if (d / "links.csv").is_file():
        for movie, attrs in table("links.csv").parse(
            lambda f: (ident(f[0], "movie id"), _attrs(imdb_id=f[1], tmdb_id=f[2])), key=lambda x: x[0], ncols=3
        ):
            links[movie] = attrs
    if (d / "movies.csv").is_file():
        for item, its_genres in table("movies.csv").parse(_movie_with_genres, key=lambda m: m[0].id, ncols=3):
            recs.items.append(Item(item.id, item.title, links.get(item.id, {})))
            _add_genres(recs, item.id, its_genres, genres)
    if (d / "tags.csv").is_file():
        names: dict[str, str] = {}

        def tagging(f: list[str]) -> Tagging:
            text = f[2].strip()
            tid = normalise(text)
            if not tid:
                raise RowError("empty_id", "empty tag")
            names.setdefault(tid, text)
            return Tagging(ident(f[0], "user id"), ident(f[1], "movie id"), tid, optional_int(f[3], "timestamp"))

        recs.taggings = list(table("tags.csv").parse(tagging, key=lambda t: (t.user, t.item, t.tag), ncols=4))
        recs.tags.extend(Tag(tid, name) for tid, name in names.items())
        counts = Counter((t.item, t.tag) for t in recs.taggings)
        recs.item_tags.extend(ItemTag(item, tag, float(n)) for (item, tag), n in counts.items())


# -- shared ---------------------------------------------------------------------------------


def _add_genres(recs: GraphRecords, item: str, names: list[str], genres: dict[str, Tag]) -> None:
    for g in dict.fromkeys(n.strip() for n in names if n.strip() not in NO_GENRE):
        recs.item_tags.append(ItemTag(item, genre_tag(g, genres), 1.0))


def _attrs(**values: str | int | None) -> dict[str, str | int | float | bool]:
    """Attributes without the missing ones (None or blank)."""
    out: dict[str, str | int | float | bool] = {}
    for k, v in values.items():
        if isinstance(v, str):
            v = v.strip()
        if v is not None and v != "":
            out[k] = v
    return out


def _complete(recs: GraphRecords, report: LoadReport) -> None:
    """Add users and movies that ratings or tags name but no metadata file declares."""
    declared_users = {u.id for u in recs.users}
    extra_users = dict.fromkeys(
        u for u in [r.user for r in recs.interactions] + [t.user for t in recs.taggings] if u not in declared_users
    )
    recs.users.extend(User(u) for u in extra_users)
    declared = {i.id for i in recs.items}
    missing = dict.fromkeys(
        i for i in [r.item for r in recs.interactions] + [t.item for t in recs.taggings] if i not in declared
    )
    recs.items.extend(Item(i, None) for i in missing)
    if missing and declared:
        report.notes.append(f"{len(missing):,} movies are rated or tagged but absent from the movie list; "
                            "kept with an unknown title")
    unrated = len(declared - {r.item for r in recs.interactions})
    if unrated:
        report.notes.append(f"{unrated:,} movies have no ratings")
