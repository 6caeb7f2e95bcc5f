"""``graph.rows``'s checks run column-wise over a whole batch: one verdict per row, same as per row.

A bulk write or a file load checks hundreds of thousands of rows; calling ``check_row`` and
``value_problem`` on each (a Python call per value) cost most of a Last.fm load. Here each field
of a table is one column, checked at once: the types with ``set(map(type, column))``, lengths,
numbers and ranges with numpy, and text with one regular-expression scan over the column joined
into one string (a bad character's position says which row it is in, through the cumulative
lengths). A column of a kind that holds no bad value costs a few C-level passes over it.

The verdict is the same as the per-row rules' for every row (``tests/test_column_checks.py``
compares them over a generated corpus): a row is bad here exactly when ``check_row`` or
``value_problem`` refuses it. The message of a bad row (a few per load, usually none) is the
per-row rules' own wording (``row_problem``), so reject reports and errors read as before.
Tables without a column description (``COLUMNS``) are checked per row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import chain, repeat
from operator import attrgetter, is_, itemgetter
from typing import Any

import numpy as np

from kgrec.graph import records as rec
from kgrec.graph import rows as row_rules
from kgrec.graph import values

Mask = np.ndarray  # bool, one entry per row: True where the row breaks a rule

#: The kind of each field of each table, in row order (the pairs of ``rows.FIELDS``' shape check and
#: ``rows.VALUE_RULES``' value rule): ``id`` a user or item id, ``key`` a tag id, IRI or predicate,
#: ``text?`` optional text, ``number`` a finite float or int64, ``ts?`` optional epoch seconds,
#: ``attrs`` a flat attribute dict, ``location?`` an optional (lat, lon) pair, ``bool`` true/false.
COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "attrs"),
    "items": ("id", "text?", "attrs", "location?"),
    "tags": ("key", "text?", "text?"),
    "entities": ("key", "text?"),
    "attributes": ("key", "text?", "text?", "text?"),
    "interacted": ("id", "id", "number", "number?", "ts?"),
    "tagged": ("id", "id", "key", "ts?"),
    "has_tag": ("id", "key", "number"),
    "follows": ("id", "id", "number"),
    "related": ("id", "key", "key"),
    "facts": ("id", "key", "key", "text?"),
    "disliked": ("id", "id", "ts?"),
    "hidden": ("id", "bool"),
    "has_attribute": ("id", "key"),
}

#: The ``rows`` table and the attributes (in row order) of each record type, as ``rows.RECORD_ROWS``
#: builds its rows (``tests/test_column_checks.py`` holds the two equal).
RECORD_COLUMNS: dict[type, tuple[str, tuple[str, ...]]] = {
    rec.User: ("users", ("id", "attrs")),
    rec.Item: ("items", ("id", "title", "attrs", "location")),
    rec.Attribute: ("attributes", ("id", "kind", "value", "name")),
    rec.UserAttribute: ("has_attribute", ("user", "attribute")),
    rec.Tag: ("tags", ("id", "name", "kind")),
    rec.Interaction: ("interacted", ("user", "item", "weight", "rating", "ts")),
    rec.Tagging: ("tagged", ("user", "item", "tag", "ts")),
    rec.ItemTag: ("has_tag", ("item", "tag", "count")),
    rec.Follow: ("follows", ("user", "friend", "weight")),
    rec.Fact: ("facts", ("item", "predicate", "entity", "entity_label")),
    rec.Dislike: ("disliked", ("user", "item", "ts")),
}

_BAD_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # graph.values' storable-text rule
_BAD_ID = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff/]")  # ... and no '/' in a user or item id
_DOTS = frozenset((".", ".."))


def row_problem(table: str, row: Any) -> str | None:
    """The per-row rules' verdict on one row: the shape (``check_row``), then the values
    (``value_problem``); None for a good row. Its message is what a bad row is reported with."""
    try:
        row = row_rules.check_row(table, row)  # a row of an older, shorter format comes back padded
    except ValueError as exc:
        return str(exc)
    return row_rules.value_problem(table, row)


def table_problems(table: str, rows: Sequence[Any]) -> dict[int, str]:
    """{index: message} of the bad rows among ``rows`` (tuples of ``table``'s shape)."""
    kinds = _kinds(table)
    if kinds is None or not rows:
        return _per_row(table, rows)
    if not _all_shaped(rows, kinds):  # rows of another width or type per row, the rest column-wise
        shaped = [type(r) in (tuple, list) and len(r) == len(kinds) for r in rows]
        bad = _per_row(table, [r for r, ok in zip(rows, shaped, strict=True) if not ok])
        others = [i for i, ok in enumerate(shaped) if not ok]
        good = [i for i, ok in enumerate(shaped) if ok]
        found = {others[i]: m for i, m in bad.items()}
        found.update((good[i], m) for i, m in table_problems(table, [rows[i] for i in good]).items())
        return {i: found[i] for i in sorted(found)}
    columns = [list(c) for c in zip(*rows, strict=True)]
    return _verdicts(table, columns, lambda i: rows[i])


def column_problems(table: str, columns: Sequence[list[Any]], row: Callable[[int], Any]) -> dict[int, str]:
    """{index: message} of the bad rows of a table given as columns (one list per field, in row
    order); ``row(i)`` builds row ``i`` for the message of a bad one."""
    kinds = _kinds(table)
    if kinds is None or len(columns) != len(kinds):
        n = len(columns[0]) if columns else 0
        return _per_row(table, [row(i) for i in range(n)])
    return _verdicts(table, columns, row)


def bad_rows(table: str, columns: Sequence[list[Any]]) -> Mask:
    """The column checks' own verdict: True for each row that breaks a rule of ``table``."""
    kinds = _kinds(table)
    if kinds is None or len(columns) != len(kinds):
        raise KeyError(f"no column description of {table!r} rows")
    n = len(columns[0]) if columns else 0
    bad = np.zeros(n, dtype=bool)
    for kind, column in zip(kinds, columns, strict=True):
        bad |= _CHECKS[kind](column)
    return bad


def record_problems(records: Sequence[Any]) -> dict[int, str]:
    """{index: message} of the records no store would accept: ``rows.record_problem``'s verdict
    for each (a tuple or list is bad when one of its records is; other objects pass), column-wise
    per record type."""
    found_leaves, owned = leaves(records)
    owners: Sequence[int] = range(len(found_leaves)) if owned is None else owned
    found: dict[int, tuple[int, str]] = {}  # owner -> (leaf position, message): the first bad leaf wins
    n = len(found_leaves)
    types = set(map(type, found_leaves))
    for t in types:
        positions: Sequence[int] = range(n) if len(types) == 1 else np.flatnonzero(
            np.fromiter(map(is_, map(type, found_leaves), repeat(t)), dtype=bool, count=n)).tolist()
        spec = RECORD_COLUMNS.get(t)
        if spec is None:
            if t in row_rules.RECORD_ROWS:  # a record kind without a column description: per row
                for pos in positions:
                    p = row_rules.record_problem(found_leaves[pos])
                    if p is not None:
                        _first(found, owners[pos], pos, p)
            continue
        table, names = spec
        group = found_leaves if len(positions) == n else list(map(found_leaves.__getitem__, positions))
        columns = [list(map(attrgetter(name), group)) for name in names]
        to_row: Callable[[Any], Any] = row_rules.RECORD_ROWS[t][1]
        members: Sequence[Any] = group

        def row(i: int, members: Sequence[Any] = members, to_row: Callable[[Any], Any] = to_row) -> Any:
            return to_row(members[i])

        for i, message in _verdicts(table, columns, row).items():
            _first(found, owners[positions[i]], positions[i], message)
    return {owner: found[owner][1] for owner in sorted(found)}


def _first(found: dict[int, tuple[int, str]], owner: int, pos: int, message: str) -> None:
    if owner not in found or pos < found[owner][0]:
        found[owner] = (pos, message)


def leaves(records: Sequence[Any]) -> tuple[Sequence[Any], list[int] | None]:
    """The records inside ``records`` (tuples and lists opened, depth first) and, for each, the
    index of the entry it came from (None when no entry is a tuple or list: each is its own)."""
    types = set(map(type, records))
    if tuple not in types and list not in types:
        return records, None
    found: list[Any] = []
    owners: list[int] = []

    def walk(x: Any, owner: int) -> None:
        if isinstance(x, tuple | list):
            for y in x:
                walk(y, owner)
        else:
            found.append(x)
            owners.append(owner)

    for i, r in enumerate(records):
        walk(r, i)
    return found, owners


def _kinds(table: str) -> tuple[str, ...] | None:
    kinds = COLUMNS.get(table)
    return kinds if kinds is not None and len(kinds) == len(row_rules.FIELDS[table]) else None


def _all_shaped(rows: Sequence[Any], kinds: tuple[str, ...]) -> bool:
    return set(map(type, rows)) <= {tuple, list} and set(map(len, rows)) == {len(kinds)}


def _per_row(table: str, rows: Sequence[Any]) -> dict[int, str]:
    out = {}
    for i, r in enumerate(rows):
        p = row_problem(table, r)
        if p is not None:
            out[i] = p
    return out


def _verdicts(table: str, columns: Sequence[list[Any]], row: Callable[[int], Any]) -> dict[int, str]:
    """The rows the column checks refuse, each worded by the per-row rules."""
    out = {}
    for i in np.flatnonzero(bad_rows(table, columns)).tolist():
        message = row_problem(table, row(i))
        if message is not None:  # never None: the tests hold the column checks to the row rules
            out[i] = message
    return out


# -- column checks, one per field kind: a bool mask, True where the value breaks a rule --------
def _is(column: list[Any], kind: type) -> Mask:
    """Where ``type(v) is kind``."""
    n = len(column)
    types = set(map(type, column))
    if types == {kind}:
        return np.ones(n, dtype=bool)
    if kind not in types:
        return np.zeros(n, dtype=bool)
    return np.fromiter(map(is_, map(type, column), repeat(kind)), dtype=bool, count=n)


def _where(mask: Mask, column: list[Any]) -> list[Any]:
    return column if mask.all() else [column[i] for i in np.flatnonzero(mask).tolist()]


def _spread(mask: Mask, sub: Mask, rest: bool) -> Mask:
    """A full-length mask: ``sub`` where ``mask`` holds, ``rest`` elsewhere."""
    out = np.full(len(mask), rest, dtype=bool)
    out[mask] = sub
    return out


def _text_bad(texts: list[str], limit: int, pattern: re.Pattern[str]) -> Mask:
    """Longer than ``limit``, or holding a character ``pattern`` finds."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bad = lengths > limit
    joined = "".join(texts)
    if pattern.search(joined) is not None:
        ends = np.cumsum(lengths)
        at = np.fromiter((m.start() for m in pattern.finditer(joined)), dtype=np.int64)
        bad[np.searchsorted(ends, at, side="right")] = True
    return bad


def _blank(texts: list[str]) -> Mask:
    """Empty or only whitespace (``not v.strip()``)."""
    return _empty(texts) | np.fromiter(map(str.isspace, texts), dtype=bool, count=len(texts))


def _id(column: list[Any]) -> Mask:
    """A user or item id (``values.id_problem``): non-blank text of at most ``MAX_ID`` characters
    without '/', not '.' or '..'."""
    is_str = _is(column, str)
    texts = _where(is_str, column)
    bad = _blank(texts) | _text_bad(texts, values.MAX_ID, _BAD_ID)
    bad |= np.fromiter(map(_DOTS.__contains__, texts), dtype=bool, count=len(texts))
    return _spread(is_str, bad, rest=True)


def _key(column: list[Any]) -> Mask:
    """A tag id, IRI or predicate (``values.key_problem``): non-blank text of at most ``MAX_KEY``."""
    is_str = _is(column, str)
    texts = _where(is_str, column)
    return _spread(is_str, _blank(texts) | _text_bad(texts, values.MAX_KEY, _BAD_TEXT), rest=True)


def _none(column: list[Any]) -> Mask:
    return np.fromiter(map(is_, column, repeat(None)), dtype=bool, count=len(column))


def _optional(check: Callable[[list[Any]], Mask]) -> Callable[[list[Any]], Mask]:
    def optional(column: list[Any]) -> Mask:
        given = ~_none(column)
        if not given.any():
            return np.zeros(len(column), dtype=bool)
        return _spread(given, check(_where(given, column)), rest=False)

    return optional


def _text(column: list[Any]) -> Mask:
    is_str = _is(column, str)
    return _spread(is_str, _text_bad(_where(is_str, column), values.MAX_TEXT, _BAD_TEXT), rest=True)


def _ints_outside(ints: list[int], low: int, high: int) -> Mask:
    """Where an int lies outside ``low..high`` (both within int64)."""
    try:
        arr = np.fromiter(ints, dtype=np.int64, count=len(ints))
    except OverflowError:  # beyond int64: compare as Python ints, element-wise in numpy
        obj = np.array(ints, dtype=object)
        return np.asarray((obj < low) | (obj > high), dtype=bool)
    return (arr < low) | (arr > high)


def _floats_not_finite(floats: list[float]) -> Mask:
    return ~np.isfinite(np.fromiter(floats, dtype=np.float64, count=len(floats)))


def _number(column: list[Any]) -> Mask:
    """A finite float or an int64 (``values.number_problem``; never a bool)."""
    is_float, is_int = _is(column, float), _is(column, int)
    bad = ~(is_float | is_int)
    if is_float.any():
        bad |= _spread(is_float, _floats_not_finite(_where(is_float, column)), rest=False)
    if is_int.any():
        bad |= _spread(is_int, _ints_outside(_where(is_int, column), values.INT64_MIN, values.INT64_MAX), rest=False)
    return bad


def _ts(column: list[Any]) -> Mask:
    """Epoch seconds: an int in ``TS_MIN..TS_MAX`` (``values.ts_problem``)."""
    is_int = _is(column, int)
    return _spread(is_int, _ints_outside(_where(is_int, column), values.TS_MIN, values.TS_MAX), rest=True)


def _bool(column: list[Any]) -> Mask:
    return ~_is(column, bool)


def _attrs(column: list[Any]) -> Mask:
    """Flat dicts (``rows._attrs``, ``values.attrs_problem``): non-empty string keys of at most
    ``MAX_ATTR_KEY`` storable characters, values text, bool, int64 or finite float."""
    is_dict = _is(column, dict)
    dicts = _where(is_dict, column)
    sizes = np.fromiter(map(len, dicts), dtype=np.int64, count=len(dicts))
    inner = np.zeros(len(dicts), dtype=bool)
    if sizes.any():
        owner = np.repeat(np.arange(len(dicts)), sizes)
        keys = list(chain.from_iterable(dicts))
        vals = list(chain.from_iterable(map(dict.values, dicts)))
        key_str = _is(keys, str)
        texts = _where(key_str, keys)
        key_bad = _spread(key_str, _empty(texts) | _text_bad(texts, values.MAX_ATTR_KEY, _BAD_TEXT), rest=True)
        val_bad = _scalar(vals)
        inner[owner[key_bad | val_bad]] = True
    return _spread(is_dict, inner, rest=True)


def _empty(texts: list[str]) -> Mask:
    return np.fromiter(map(is_, map(bool, texts), repeat(False)), dtype=bool, count=len(texts))


def _scalar(column: list[Any]) -> Mask:
    """An attribute value (``values.scalar_problem``): text, bool, int64 or finite float."""
    is_str, is_bool = _is(column, str), _is(column, bool)
    bad = _number(column) & ~is_bool
    if is_str.any():
        bad &= ~is_str
        bad |= _spread(is_str, _text_bad(_where(is_str, column), values.MAX_TEXT, _BAD_TEXT), rest=False)
    return bad


def _location(column: list[Any]) -> Mask:
    """A (lat, lon) pair of finite WGS-84 degrees (``values.location_problem``; ints count, bools not)."""
    n = len(column)
    pair = np.fromiter(map(isinstance, column, repeat(list | tuple)), dtype=bool, count=n)
    pairs = _where(pair, column)
    two = np.fromiter(map(len, pairs), dtype=np.int64, count=len(pairs)) == 2
    pairs = _where(two, pairs)
    inner = np.ones(len(two), dtype=bool)
    if pairs:
        bad = np.zeros(len(pairs), dtype=bool)
        for index, limit in ((0, 90.0), (1, 180.0)):
            coords = list(map(itemgetter(index), pairs))
            bad |= _degrees_bad(coords, limit)
        inner[two] = bad
    return _spread(pair, inner, rest=True)


def _degrees_bad(coords: list[Any], limit: float) -> Mask:
    is_float, is_int = _is(coords, float), _is(coords, int)
    bad = ~(is_float | is_int)
    if is_float.any():
        x = np.fromiter(_where(is_float, coords), dtype=np.float64)
        bad |= _spread(is_float, ~np.isfinite(x) | (x < -limit) | (x > limit), rest=False)
    if is_int.any():
        obj = np.array(_where(is_int, coords), dtype=object)
        bad |= _spread(is_int, np.asarray((obj < -limit) | (obj > limit), dtype=bool), rest=False)
    return bad


_CHECKS: dict[str, Callable[[list[Any]], Mask]] = {
    "id": _id,
    "key": _key,
    "text?": _optional(_text),
    "number": _number,
    "number?": _optional(_number),
    "ts?": _optional(_ts),
    "attrs": _attrs,
    "location?": _optional(_location),
    "bool": _bool,
}
