"""How a whole ``GraphRecords`` becomes nodes and relationships, for the bulk write paths.

A bulk load (Neo4j's create-only and merge paths, the neo4j-admin CSV export) first folds the
records into one *net row* per node and per relationship: the row that, applied once, leaves
the graph exactly as applying every record in order would (as the per-call upserts and
MemoryStore do). Everything is driven by the tables below, one entry per record kind, node
table and relationship table, so a new kind is a new entry, not a new function. Rows keep
``graph.rows`` shapes.

Every whole-graph write starts from ``CheckedRecords``: the records as ``graph.rows`` rows, each
checked once, column-wise (``graph.column_checks``), before anything is written. The stores
write those rows without checking them again; only ``check_records`` makes one. Records a
loader already checked with their file and line (``Vetted``) are not checked a second time.
"""

from __future__ import annotations

import gc
import time
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter, is_, itemgetter
from typing import Any

import numpy as np

from kgrec.graph.column_checks import column_problems, leaves, record_problems
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import ATTR_PREFIX, COUNT_KEYS, KEY, Label, Rel
from kgrec.graph.store_errors import StoreError

Row = tuple[Any, ...]


class Rule(Enum):
    """How a node field of a later record combines with what the node already holds."""

    REPLACE = "replace"  # the later value wins; None removes the property
    KEEP = "keep"  # the later value wins unless it is None (then the known value stays)
    ATTRS = "attrs"  # a dict of free-form attributes replacing all ``attr_*`` properties
    POINT = "point"  # a (lat, lon) pair or None, replacing the location (Neo4j: a WGS-84 point)


@dataclass(frozen=True)
class NodeTable:
    """Rows ``(key, field...)`` of one label; ``fields`` names row positions 1.. and their rules."""

    table: str
    label: Label
    fields: tuple[tuple[str, Rule], ...]

    @property
    def key(self) -> str:
        return KEY[self.label]


@dataclass(frozen=True)
class RelTable:
    """Rows of one relationship type: ``start``/``end`` are the row positions of the end keys,
    ``identity`` the further positions that tell two relationships between the same nodes apart
    (TAGGED's tag), ``props`` the stored properties by row position, and ``nodes`` every node key
    the row names (created with only its key when missing)."""

    table: str
    rel: Rel
    kind: str
    start: int
    end: int
    props: tuple[tuple[str, int], ...]
    nodes: tuple[tuple[Label, int], ...]
    identity: tuple[int, ...] = ()


#: The record attributes of each kind, per ``graph.rows`` table, in row order.
RECORD_TABLES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "users": (("users", ("id", "attrs")),),
    "items": (("items", ("id", "title", "attrs", "location")),),
    "tags": (("tags", ("id", "name", "kind")),),
    "attributes": (("attributes", ("id", "kind", "value", "name")),),
    "interactions": (("interacted", ("user", "item", "weight", "rating", "ts")),),
    "taggings": (("tagged", ("user", "item", "tag", "ts")),),
    "item_tags": (("has_tag", ("item", "tag", "count")),),
    "follows": (("follows", ("user", "friend", "weight")),),
    "facts": (("entities", ("entity", "entity_label")), ("related", ("item", "predicate", "entity"))),
    "dislikes": (("disliked", ("user", "item", "ts")),),
    "has_attribute": (("has_attribute", ("user", "attribute")),),
}

NODE_TABLES: tuple[NodeTable, ...] = (
    NodeTable("users", Label.USER, (("attrs", Rule.ATTRS),)),
    NodeTable("items", Label.ITEM, (("title", Rule.REPLACE), ("attrs", Rule.ATTRS), ("location", Rule.POINT))),
    NodeTable("tags", Label.TAG, (("name", Rule.KEEP), ("kind", Rule.KEEP))),
    NodeTable("entities", Label.ENTITY, (("label", Rule.KEEP),)),
    NodeTable("attributes", Label.ATTRIBUTE, (("kind", Rule.KEEP), ("value", Rule.KEEP), ("name", Rule.KEEP))),
)

REL_TABLES: tuple[RelTable, ...] = (
    RelTable("interacted", Rel.INTERACTED, "interactions", 0, 1, (("weight", 2), ("rating", 3), ("ts", 4)),
             ((Label.USER, 0), (Label.ITEM, 1))),
    RelTable("tagged", Rel.TAGGED, "taggings", 0, 1, (("tag", 2), ("ts", 3)),
             ((Label.USER, 0), (Label.ITEM, 1), (Label.TAG, 2)), identity=(2,)),
    RelTable("has_tag", Rel.HAS_TAG, "item_tags", 0, 1, (("count", 2),), ((Label.ITEM, 0), (Label.TAG, 1))),
    RelTable("follows", Rel.FOLLOWS, "follows", 0, 1, (("weight", 2),), ((Label.USER, 0), (Label.USER, 1))),
    RelTable("related", Rel.RELATED, "facts", 0, 2, (("predicate", 1),),
             ((Label.ITEM, 0), (Label.ENTITY, 2)), identity=(1,)),
    RelTable("disliked", Rel.DISLIKED, "dislikes", 0, 1, (("ts", 2),), ((Label.USER, 0), (Label.ITEM, 1))),
    RelTable("has_attribute", Rel.HAS_ATTRIBUTE, "has_attribute", 0, 1, (), ((Label.USER, 0), (Label.ATTRIBUTE, 1))),
)

NODE_BY_TABLE = {t.table: t for t in NODE_TABLES}
REL_BY_TABLE = {t.table: t for t in REL_TABLES}


@dataclass
class BulkGraph:
    """Net rows: per label, key -> row (None for a node only named by relationships), and per
    relationship table, one row per relationship, in first-seen order."""

    nodes: dict[Label, dict[str, Row | None]] = field(default_factory=lambda: {t.label: {} for t in NODE_TABLES})
    rels: dict[str, list[Row]] = field(default_factory=dict)
    #: Records given per ``COUNT_KEYS`` kind (what a load reports as written).
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    #: Items flagged hidden (``GraphRecords.hidden``) that are nodes of this graph; a flag on an
    #: item the graph does not hold is skipped, as ``GraphStore.set_hidden`` skips it.
    hidden: list[str] = field(default_factory=list)

    def node_count(self) -> int:
        return sum(len(keys) for keys in self.nodes.values())

    def rel_count(self) -> int:
        return sum(len(rows) for rows in self.rels.values())


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for one bulk step (parsing a file, checking or writing a
    whole graph): each of the hundreds of thousands of tuples, dicts and records such a step builds
    counts towards the next collection, and the full ones scan everything built so far (measured:
    about half the CPU of a Last.fm load). Reference counting still frees memory as usual; only
    reference cycles wait until the step ends. Nested pauses end with the outermost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: The record type of each ``COUNT_KEYS`` kind (``GraphRecords``' annotations).
KIND_TYPES: dict[str, type] = {
    kind: typing.get_args(hint)[0]
    for kind, hint in typing.get_type_hints(GraphRecords).items() if kind in COUNT_KEYS
}


class Vetted:
    """Records that passed the checks where they were read (a loader's ``Table``, which reports
    a bad row with its file and line), held so that ``check_records`` takes them as checked.
    Only ``vet`` adds to it, and only records that passed."""

    def __init__(self) -> None:
        self._held: list[Any] = []  # the records themselves, so that no id is reused while held
        self._ids: np.ndarray | None = None  # their ids, sorted (built when first asked)
        #: Rows checked by ``vet`` and the seconds it took (benchmarks/load.py reports them).
        self.rows = 0
        self.seconds = 0.0

    def vet(self, records: Sequence[Any]) -> dict[int, str]:
        """``column_checks.record_problems(records)``; the records of every good entry are held."""
        started = time.perf_counter()
        with paused_gc():
            problems = record_problems(records)
            found, owners = leaves(records)
            if not problems and owners is None:
                self._held.extend(found)
            else:
                owner_of = range(len(found)) if owners is None else owners
                self._held.extend(r for r, o in zip(found, owner_of, strict=True) if o not in problems)
            self._ids = None
        self.rows += len(records)
        self.seconds += time.perf_counter() - started
        return problems

    def holds(self, recs: list[Any], kind: type) -> np.ndarray:
        """Where ``recs[i]`` is a held record of type ``kind``."""
        if self._ids is None:
            self._ids = np.sort(np.fromiter(map(id, self._held), dtype=np.int64, count=len(self._held)))
        n = len(recs)
        if not len(self._ids):
            return np.zeros(n, dtype=bool)
        ids = np.fromiter(map(id, recs), dtype=np.int64, count=n)
        held = self._ids[np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)] == ids
        if set(map(type, recs)) != {kind}:
            held &= np.fromiter(map(is_, map(type, recs), [kind] * n), dtype=bool, count=n)
        return held


_SEAL = object()


@dataclass(frozen=True, eq=False)
class CheckedRecords:
    """A whole graph as ``graph.rows`` rows (per table, in write order: ``COUNT_KEYS``, a fact as
    its entity then its RELATED row), every one of which passed the checks. The stores' whole-graph
    writes take it without checking again; only ``check_records`` makes one."""

    tables: dict[str, list[Row]]
    #: ``GraphRecords.hidden``, checked.
    hidden: list[str]
    #: Records given per ``COUNT_KEYS`` kind.
    written: dict[str, int]
    #: The records it was made from (stores without a path of their own upsert these, checking again).
    records: GraphRecords
    #: Rows checked here (records a ``Vetted`` held were not) and the seconds the checks took.
    rows_checked: int
    seconds: float
    seal: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.seal is not _SEAL:
            raise TypeError("a CheckedRecords comes only from graph.bulk.check_records")


def check_records(records: GraphRecords, vetted: Vetted | None = None) -> CheckedRecords:
    """Every row of ``records`` checked once, column-wise: ``CheckedRecords``, or ``StoreError``
    naming the first bad row (by table, 1-based, as ``rows.check_rows`` does) before anything is
    written. Records ``vetted`` holds were checked where they were read and are not checked again."""
    started = time.perf_counter()
    tables: dict[str, list[Row]] = {}
    checked = 0
    with paused_gc():
        for kind in COUNT_KEYS:
            recs = getattr(records, kind)
            trusted = vetted.holds(recs, KIND_TYPES[kind]) if vetted is not None and recs else None
            todo = None if trusted is None or not trusted.any() else np.flatnonzero(~trusted).tolist()
            for table, names in RECORD_TABLES[kind]:
                rows: list[Row] = list(zip(*(map(attrgetter(name), recs) for name in names), strict=True))
                part = rows if todo is None else list(map(rows.__getitem__, todo))
                if part:
                    columns = [list(c) for c in zip(*part, strict=True)]
                    _refuse(table, column_problems(table, columns, part.__getitem__), todo)
                    checked += len(part)
                tables[table] = rows
        hidden = list(records.hidden)
        _refuse("hidden", column_problems("hidden", [hidden, [True] * len(hidden)], lambda i: (hidden[i], True)),
                None)
    return CheckedRecords(tables, hidden, {k: len(getattr(records, k)) for k in COUNT_KEYS}, records,
                          checked + len(hidden), time.perf_counter() - started, _SEAL)


def _refuse(table: str, problems: dict[int, str], positions: list[int] | None) -> None:
    if problems:
        first = min(problems)
        n = (first if positions is None else positions[first]) + 1
        raise StoreError(f"bad {table} row {n}: {problems[first]}; nothing of this batch was written")


def resolve(records: GraphRecords | CheckedRecords) -> BulkGraph:
    """Fold ``records`` into net rows; unchecked records are checked first (``StoreError``)."""
    checked = records if isinstance(records, CheckedRecords) else check_records(records)
    tables = list(checked.tables.items())
    out = BulkGraph()
    out.written.update(checked.written)
    for table, rows in tables:
        if table in NODE_BY_TABLE:
            _fold_nodes(NODE_BY_TABLE[table], rows, out.nodes[NODE_BY_TABLE[table].label])
    for table, rows in tables:
        if table in REL_BY_TABLE:
            spec = REL_BY_TABLE[table]
            out.rels[table] = _fold_rels(spec, rows)
            for label, pos in spec.nodes:
                known = out.nodes[label]
                for key in dict.fromkeys(map(itemgetter(pos), rows)):
                    known.setdefault(key, None)
    items = out.nodes[Label.ITEM]
    out.hidden = [key for key in dict.fromkeys(checked.hidden) if key in items]
    return out


def _fold_nodes(spec: NodeTable, rows: list[Row], known: dict[str, Row | None]) -> None:
    keep = [i for i, (_, rule) in enumerate(spec.fields, 1) if rule is Rule.KEEP]
    for row in rows:
        old = known.get(row[0])
        if old is not None and keep:
            merged = list(row)
            for i in keep:
                if merged[i] is None:
                    merged[i] = old[i]
            row = tuple(merged)
        known[row[0]] = row


def _fold_rels(spec: RelTable, rows: list[Row]) -> list[Row]:
    """The last row of each relationship (its properties replace the earlier ones)."""
    ident = itemgetter(spec.start, spec.end, *spec.identity)
    return list(dict(zip(map(ident, rows), rows, strict=True)).values())


def node_properties(spec: NodeTable, key: str, row: Row | None) -> dict[str, Any]:
    """The stored properties of a node created from its net row (absent values left out)."""
    props: dict[str, Any] = {spec.key: key}
    if row is None:
        return props
    for (name, rule), value in zip(spec.fields, row[1:], strict=True):
        if rule is Rule.ATTRS:
            props.update((ATTR_PREFIX + k, v) for k, v in value.items())
        elif rule is Rule.POINT and value is not None:
            props[name] = (float(value[0]), float(value[1]))
        elif value is not None:
            props[name] = value
    return props


def rel_properties(spec: RelTable, row: Row) -> dict[str, Any]:
    """The stored properties of a relationship from its net row (absent values left out)."""
    return {name: row[pos] for name, pos in spec.props if row[pos] is not None}
