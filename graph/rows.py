"""Row checks shared by every store, so the same input gets the same outcome in each.

A write is a list of plain tuples (one shape per table, below); every row is checked before
anything is written, and one bad row refuses the whole batch with ``StoreError``. The checks
are what MemoryStore's file and Neo4j's property types can both hold: non-empty string keys,
finite numbers, integer timestamps and flat scalar attributes. MemoryStore also runs them on
every row it reads back from disk (``check_row``: the shape only, so a store written before a
rule was tightened still opens); writes (``check_rows``) also hold every value to
``graph.values`` — storable text, URL-addressable user and item ids, 64-bit integers, sane
timestamps — so nothing either store cannot hold, or the API cannot address, is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kgrec.graph import impressions, values
from kgrec.graph import records as rec
from kgrec.graph.store_errors import StoreError

Check = Callable[[object], bool]
Problem = Callable[[Any], "str | None"]


# One function per field kind, kept flat because reading a store file runs them on every row.
def _id(v: object) -> bool:
    return type(v) is str and v != ""


def _str_or_none(v: object) -> bool:
    return v is None or type(v) is str


def _num(v: object) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


def _num_or_none(v: object) -> bool:
    return v is None or _num(v)


def _int_or_none(v: object) -> bool:
    return v is None or type(v) is int


def _bool(v: object) -> bool:
    return type(v) is bool


def _location_or_none(v: object) -> bool:
    return v is None or (isinstance(v, list | tuple) and len(v) == 2 and all(_num(x) for x in v))


def _attrs(v: object) -> bool:
    return type(v) is dict and all(
        type(k) is str and k != "" and (type(x) in (str, int, bool) or (type(x) is float and math.isfinite(x)))
        for k, x in v.items()
    )


_MEANING: dict[Check, str] = {
    _id: "a non-empty string",
    _str_or_none: "a string or None",
    _num: "a finite number",
    _num_or_none: "a finite number or None",
    _int_or_none: "an integer or None",
    _bool: "true or false",
    _location_or_none: "a (lat, lon) pair of finite numbers or None",
    _attrs: "a flat dict of string keys to str/int/float/bool values",
}

#: Each table's row shape: (what the field is, its check), in tuple order.
FIELDS: dict[str, tuple[tuple[str, Check], ...]] = {
    "users": (("user id", _id), ("user attrs", _attrs)),
    "items": (("item id", _id), ("item title", _str_or_none), ("item attrs", _attrs),
              ("item location", _location_or_none)),
    "tags": (("tag id", _id), ("tag name", _str_or_none), ("tag kind", _str_or_none)),
    "entities": (("entity iri", _id), ("entity label", _str_or_none)),
    "attributes": (("attribute id", _id), ("attribute kind", _str_or_none), ("attribute value", _str_or_none),
                   ("attribute name", _str_or_none)),
    "interacted": (
        ("interaction user", _id), ("interaction item", _id), ("interaction weight", _num),
        ("interaction rating", _num_or_none), ("interaction ts", _int_or_none),
    ),
    "tagged": (("tagging user", _id), ("tagging item", _id), ("tagging tag", _id), ("tagging ts", _int_or_none)),
    "has_tag": (("item tag item", _id), ("item tag tag", _id), ("item tag count", _num)),
    "follows": (("follow user", _id), ("follow friend", _id), ("follow weight", _num)),
    "related": (("fact item", _id), ("fact predicate", _id), ("fact entity", _id)),
    "facts": (("fact item", _id), ("fact predicate", _id), ("fact entity", _id), ("fact entity label", _str_or_none)),
    "disliked": (("dislike user", _id), ("dislike item", _id), ("dislike ts", _int_or_none)),
    "hidden": (("hidden item", _id), ("hidden flag", _bool)),
    "has_attribute": (("attribute link user", _id), ("attribute link attribute", _id)),
}

# Impressions and their outcomes (``graph.impressions``: shapes, meanings, value rules, keys).
FIELDS.update(impressions.FIELDS)
_MEANING.update(impressions.MEANING)

#: Tables whose rows gained trailing fields after the first store format: a shorter row read back
#: from an older file is padded with None (items gained their location).
LEGACY_WIDTH = {"items": 3}

_CHECKS = {table: tuple(check for _, check in fields) for table, fields in FIELDS.items()}


def _optional(problem: Problem) -> Problem:
    return lambda v: None if v is None else problem(v)


def _attrs_problem(v: dict[object, object]) -> str | None:
    bad = values.attrs_problem(v)
    return None if bad is None else f"{bad[0]!r} {bad[1]}"


_ID, _KEY = values.id_problem, values.key_problem
_TEXT, _NUM, _TS = _optional(values.text_problem), values.number_problem, _optional(values.ts_problem)

#: Each table's value rules (``graph.values``), in tuple order; run on writes after the shape check.
VALUE_RULES: dict[str, tuple[Problem, ...]] = {
    "users": (_ID, _attrs_problem),
    "items": (_ID, _TEXT, _attrs_problem, _optional(values.location_problem)),
    "tags": (_KEY, _TEXT, _TEXT),
    "entities": (_KEY, _TEXT),
    "attributes": (_KEY, _TEXT, _TEXT, _TEXT),
    "interacted": (_ID, _ID, _NUM, _optional(values.number_problem), _TS),
    "tagged": (_ID, _ID, _KEY, _TS),
    "has_tag": (_ID, _KEY, _NUM),
    "follows": (_ID, _ID, _NUM),
    "related": (_ID, _KEY, _KEY),
    "facts": (_ID, _KEY, _KEY, _TEXT),
    "disliked": (_ID, _ID, _TS),
    "hidden": (_ID, lambda v: None),
    "has_attribute": (_ID, _KEY),
}

VALUE_RULES.update(impressions.VALUE_RULES)


def check_row(table: str, row: Any) -> Any:
    """``row`` itself when it has ``table``'s shape (a row of an older format padded to it, see
    ``LEGACY_WIDTH``); ValueError saying which field is wrong."""
    checks = _CHECKS[table]
    if type(row) in (list, tuple) and len(row) == LEGACY_WIDTH.get(table, -1):
        row = (*row, *([None] * (len(checks) - len(row))))
    if type(row) not in (list, tuple) or len(row) != len(checks):
        raise ValueError(f"{row!r} does not have the {len(checks)} fields of a {table} row")
    for value, ok in zip(row, checks, strict=True):
        if not ok(value):
            raise ValueError(_explain(table, row))
    return row


def _explain(table: str, row: Any) -> str:
    for value, (what, ok) in zip(row, FIELDS[table], strict=True):
        if not ok(value):
            return f"{what} must be {_MEANING[ok]}, got {value!r}"
    return f"{row!r} is not a {table} row"


def value_problem(table: str, row: Any) -> str | None:
    """What is wrong with the values of a row of the right shape, naming the field; or None."""
    for value, (what, _), problem in zip(row, FIELDS[table], VALUE_RULES[table], strict=True):
        found = problem(value)
        if found is not None:
            return f"{what} {value!r:.80} {found}"
    return None


def check_rows(table: str, rows: list[Any]) -> list[Any]:
    """``rows`` when every one is valid; otherwise StoreError naming the first bad row (1-based)."""
    for n, row in enumerate(rows, 1):
        try:
            check_row(table, row)
        except ValueError as exc:
            raise StoreError(f"bad {table} row {n}: {exc}; nothing of this batch was written") from None
        problem = value_problem(table, row)
        if problem is not None:
            raise StoreError(f"bad {table} row {n}: {problem}; nothing of this batch was written")
    return rows


def distinct(table: str, rows: list[Any]) -> int:
    """How many distinct nodes or relationships ``rows`` write: rows with the same key (a user
    id, a (user, item) pair, a (user, item, tag) tagging...) are one upsert, the last row's
    values winning. This is what the stores' upserts return."""
    width = KEY_WIDTH[table]
    return len({tuple(row[:width]) for row in rows})


#: How many leading fields of each table's row form its key (``graph.schema``'s uniqueness rules).
KEY_WIDTH = {"users": 1, "items": 1, "tags": 1, "entities": 1, "attributes": 1, "interacted": 2, "tagged": 3,
             "has_tag": 2, "follows": 2, "related": 3, "facts": 3, "disliked": 2, "hidden": 1, "has_attribute": 2,
             **impressions.KEY_WIDTH}


#: The table and row shape of each record kind, as the stores write them.
RECORD_ROWS: dict[type, tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    rec.User: ("users", lambda r: (r.id, r.attrs)),
    rec.Item: ("items", lambda r: (r.id, r.title, r.attrs, r.location)),
    rec.Attribute: ("attributes", lambda r: (r.id, r.kind, r.value, r.name)),
    rec.UserAttribute: ("has_attribute", lambda r: (r.user, r.attribute)),
    rec.Tag: ("tags", lambda r: (r.id, r.name, r.kind)),
    rec.Interaction: ("interacted", lambda r: (r.user, r.item, r.weight, r.rating, r.ts)),
    rec.Tagging: ("tagged", lambda r: (r.user, r.item, r.tag, r.ts)),
    rec.ItemTag: ("has_tag", lambda r: (r.item, r.tag, r.count)),
    rec.Follow: ("follows", lambda r: (r.user, r.friend, r.weight)),
    rec.Fact: ("facts", lambda r: (r.item, r.predicate, r.entity, r.entity_label)),
    rec.Dislike: ("disliked", lambda r: (r.user, r.item, r.ts)),
}


def record_problem(record: Any) -> str | None:
    """What no store would accept in a ``graph.records`` record (or in each record of a tuple or
    list of them), the same answer ``check_rows`` gives at write time; None when it is fine."""
    if isinstance(record, tuple | list):
        return next((p for p in map(record_problem, record) if p is not None), None)
    kind = RECORD_ROWS.get(type(record))
    if kind is None:
        return None
    table, to_row = kind
    row = to_row(record)
    try:
        check_row(table, row)
    except ValueError as exc:
        return str(exc)
    return value_problem(table, row)
