"""A folder of UTF-8 CSV files with header rows: the format for your own data.

``interactions.csv`` (``user,item,weight[,rating][,ts]``) is required. Optional files:
``items.csv`` (``item[,title][,lat,lon]``; ``lat``/``lon`` are WGS-84 degrees, both or neither,
and become the item's location; further columns become item attributes), ``users.csv``
(``user`` plus any columns: the user's attributes, those that describe groups also Attribute
nodes by ``graph.user_attributes``'s rules), ``tags.csv`` (``tag,name[,kind]``),
``item_tags.csv`` (``item,tag[,count]``), ``taggings.csv`` (``user,item,tag[,ts]``) and
``social.csv`` (``user,friend[,weight]``, directed FOLLOWS; ``symmetric=True`` adds each
reverse edge the file does not list itself). Optional columns may be missing from the header
or left empty in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kgrec.graph.records import AttrValue, Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.loaders.checked_tables import (
    Loaded,
    LoadReport,
    RowError,
    Table,
    add_user_attributes,
    ident,
    location,
    optional_float,
    optional_int,
    weight,
)

T = TypeVar("T")

#: file -> (required columns, optional columns)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "interactions.csv": (("user", "item", "weight"), ("rating", "ts")),
    "items.csv": (("item",), ("title", "lat", "lon")),
    "users.csv": (("user",), ()),
    "tags.csv": (("tag",), ("name", "kind")),
    "item_tags.csv": (("item", "tag"), ("count",)),
    "taggings.csv": (("user", "item", "tag"), ("ts",)),
    "social.csv": (("user", "friend"), ("weight",)),
}


class CsvFormatError(ValueError):
    """A file's header lacks a required column (the whole file is unusable, not one row)."""


def load(path: str | Path, symmetric: bool = False, progress: bool = False) -> Loaded:
    """Parse a CSV folder into records and a report."""
    d = Path(path)
    if not (d / "interactions.csv").is_file():
        raise FileNotFoundError(f"{d}: no interactions.csv (required: user,item,weight[,rating][,ts])")
    report = LoadReport(f"csv:{d.name or d}", progress=progress)
    recs = GraphRecords()

    recs.interactions = _read(d, "interactions.csv", report, _interaction, lambda r: (r.user, r.item))
    recs.items = _read(d, "items.csv", report, _item, lambda i: i.id)
    recs.users = _read(d, "users.csv", report, _user, lambda u: u.id)
    recs.tags = _read(d, "tags.csv", report, _tag, lambda t: t.id)
    recs.item_tags = _read(d, "item_tags.csv", report, _item_tag, lambda r: (r.item, r.tag))
    recs.taggings = _read(d, "taggings.csv", report, _tagging, lambda r: (r.user, r.item, r.tag))
    recs.follows = _read(d, "social.csv", report, _follow, lambda r: (r.user, r.friend))
    if symmetric:
        listed = {(f.user, f.friend) for f in recs.follows}
        reverse = [Follow(f.friend, f.user, f.weight) for f in recs.follows if (f.friend, f.user) not in listed]
        recs.follows.extend(dict.fromkeys(reverse))
        report.notes.append(f"--symmetric added {len(set(reverse)):,} reverse FOLLOWS edges")
    _complete(recs, report)
    add_user_attributes(recs, report, "users.csv")
    return Loaded(recs, report)


def _read(
    d: Path, name: str, report: LoadReport, parse: Callable[[dict[str, str]], T], key: Callable[[T], object]
) -> list[T]:
    if not (d / name).is_file():
        return []
    table = Table(d / name, report, sep=",", quoted=True)
    required, optional = COLUMNS[name]
    checked: list[bool] = []

    def check_header() -> None:
        if table.columns is None:
            raise CsvFormatError(f"{d / name}: empty file; expected a header with {', '.join(required)}")
        lacking = [c for c in required if c not in (table.columns or [])]
        if lacking:
            raise CsvFormatError(f"{d / name}: header {table.columns} lacks required column(s) {lacking}")

    def by_name(fields: list[str]) -> T:
        if not checked:
            check_header()
            checked.append(True)
        return parse(dict(zip(table.columns or [], fields, strict=True)))

    rows = list(table.parse(by_name, key=key))
    check_header()
    unknown = [c for c in table.columns or [] if c not in required + optional]
    if unknown and name not in ("items.csv", "users.csv"):
        report.notes.append(f"{name}: ignored unknown column(s) {unknown}")
    return rows


def _interaction(r: dict[str, str]) -> Interaction:
    return Interaction(
        ident(r["user"], "user"),
        ident(r["item"], "item"),
        weight(r["weight"]),
        optional_float(r.get("rating"), "rating"),
        optional_int(r.get("ts"), "ts"),
    )


def _item(r: dict[str, str]) -> Item:
    title = (r.get("title") or "").strip() or None
    attrs = _attrs(r, ("item", "title", "lat", "lon"))
    return Item(ident(r["item"], "item"), title, attrs, location(r.get("lat"), r.get("lon")))


def _user(r: dict[str, str]) -> User:
    return User(ident(r["user"], "user"), _attrs(r, ("user",)))


def _attrs(r: dict[str, str], reserved: tuple[str, ...]) -> dict[str, AttrValue]:
    """The other columns of a row, as text, without the empty ones."""
    return {k: v.strip() for k, v in r.items() if k not in reserved and k and v.strip()}


def _tag(r: dict[str, str]) -> Tag:
    tid = ident(r["tag"], "tag")
    return Tag(tid, (r.get("name") or "").strip() or tid, (r.get("kind") or "").strip() or "tag")


def _item_tag(r: dict[str, str]) -> ItemTag:
    count = r.get("count")
    return ItemTag(ident(r["item"], "item"), ident(r["tag"], "tag"), weight(count, "count") if count else 1.0)


def _tagging(r: dict[str, str]) -> Tagging:
    return Tagging(ident(r["user"], "user"), ident(r["item"], "item"), ident(r["tag"], "tag"),
                   optional_int(r.get("ts"), "ts"))


def _follow(r: dict[str, str]) -> Follow:
    user, friend = ident(r["user"], "user"), ident(r["friend"], "friend")
    if user == friend:
        raise RowError("self_loop", f"{user} follows themself")
    w = r.get("weight")
    return Follow(user, friend, weight(w) if w and w.strip() else 1.0)


def _complete(recs: GraphRecords, report: LoadReport) -> None:
    """Declare every user and every referenced tag; note items and tags the files never declare."""
    users: dict[str, None] = {}
    for r in recs.interactions:
        users.setdefault(r.user)
    for t in recs.taggings:
        users.setdefault(t.user)
    for f in recs.follows:
        users.setdefault(f.user)
        users.setdefault(f.friend)
    declared = {u.id for u in recs.users}
    recs.users.extend(User(u) for u in users if u not in declared)
    if recs.items:
        declared = {i.id for i in recs.items}
        refs = [r.item for r in recs.interactions] + [t.item for t in recs.taggings] + [x.item for x in recs.item_tags]
        missing = dict.fromkeys(i for i in refs if i not in declared)
        recs.items.extend(Item(i) for i in missing)
        if missing:
            report.notes.append(f"{len(missing):,} items are referenced but absent from items.csv; kept without title")
    declared_tags = {t.id for t in recs.tags}
    refs_t = [t.tag for t in recs.taggings] + [x.tag for x in recs.item_tags]
    undeclared = dict.fromkeys(t for t in refs_t if t not in declared_tags)
    recs.tags.extend(Tag(t, t) for t in undeclared)
    if undeclared and declared_tags:
        report.notes.append(f"{len(undeclared):,} tags are referenced but absent from tags.csv; named by their id")
