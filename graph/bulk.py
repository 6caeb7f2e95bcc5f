"""How a whole ``GraphRecords`` becomes nodes and relationships, for the bulk write paths.

A bulk load (Neo4j's create-only and merge paths, the neo4j-admin CSV export) first folds the
records into one *net row* per node and per relationship: the row that, applied once, leaves
the graph exactly as applying every record in order would (as the per-call upserts and
MemoryStore do). Everything is driven by the tables below, one entry per record kind, node
table and relationship table, so a new kind is a new entry, not a new function. Rows keep
``graph.rows`` shapes and are checked there before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter, itemgetter
from typing import Any

from kgrec.graph.records import GraphRecords
from kgrec.graph.rows import check_rows
from kgrec.graph.schema import ATTR_PREFIX, COUNT_KEYS, KEY, Label, Rel

Row = tuple[Any, ...]


class Rule(Enum):
    """How a node field of a later record combines with what the node already holds."""

    REPLACE = "replace"  # the later value wins; None removes the property
    KEEP = "keep"  # the later value wins unless it is None (then the known value stays)
    ATTRS = "attrs"  # a dict of free-form attributes replacing all ``attr_*`` properties


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
    "items": (("items", ("id", "title", "attrs")),),
    "tags": (("tags", ("id", "name", "kind")),),
    "interactions": (("interacted", ("user", "item", "weight", "rating", "ts")),),
    "taggings": (("tagged", ("user", "item", "tag", "ts")),),
    "item_tags": (("has_tag", ("item", "tag", "count")),),
    "follows": (("follows", ("user", "friend", "weight")),),
    "facts": (("entities", ("entity", "entity_label")), ("related", ("item", "predicate", "entity"))),
    "dislikes": (("disliked", ("user", "item", "ts")),),
}

NODE_TABLES: tuple[NodeTable, ...] = (
    NodeTable("users", Label.USER, (("attrs", Rule.ATTRS),)),
    NodeTable("items", Label.ITEM, (("title", Rule.REPLACE), ("attrs", Rule.ATTRS))),
    NodeTable("tags", Label.TAG, (("name", Rule.KEEP), ("kind", Rule.KEEP))),
    NodeTable("entities", Label.ENTITY, (("label", Rule.KEEP),)),
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


def table_rows(records: GraphRecords) -> Iterator[tuple[str, str, list[Row]]]:
    """(kind, table, rows) for every record kind, nodes first, each table checked whole."""
    for kind in COUNT_KEYS:
        recs = getattr(records, kind)
        for table, names in RECORD_TABLES[kind]:
            get = attrgetter(*names)
            yield kind, table, check_rows(table, [get(r) for r in recs])


def check_records(records: GraphRecords) -> None:
    """``StoreError`` naming the first bad row of any kind, before anything is written."""
    for _ in table_rows(records):
        pass
    check_rows("hidden", [(key, True) for key in records.hidden])


def resolve(records: GraphRecords) -> BulkGraph:
    """Fold ``records`` into net rows; every row is checked (``StoreError``) before any is used."""
    tables = list(table_rows(records))
    check_rows("hidden", [(key, True) for key in records.hidden])
    out = BulkGraph()
    for kind in COUNT_KEYS:
        out.written[kind] = len(getattr(records, kind))
    for _, table, rows in tables:
        if table in NODE_BY_TABLE:
            _fold_nodes(NODE_BY_TABLE[table], rows, out.nodes[NODE_BY_TABLE[table].label])
    for _, table, rows in tables:
        if table in REL_BY_TABLE:
            spec = REL_BY_TABLE[table]
            out.rels[table] = _fold_rels(spec, rows)
            for label, pos in spec.nodes:
                known = out.nodes[label]
                for row in rows:
                    known.setdefault(row[pos], None)
    items = out.nodes[Label.ITEM]
    out.hidden = [key for key in dict.fromkeys(records.hidden) if key in items]
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
    return list({ident(row): row for row in rows}.values())


def node_properties(spec: NodeTable, key: str, row: Row | None) -> dict[str, Any]:
    """The stored properties of a node created from its net row (absent values left out)."""
    props: dict[str, Any] = {spec.key: key}
    if row is None:
        return props
    for (name, rule), value in zip(spec.fields, row[1:], strict=True):
        if rule is Rule.ATTRS:
            props.update((ATTR_PREFIX + k, v) for k, v in value.items())
        elif value is not None:
            props[name] = value
    return props


def rel_properties(spec: RelTable, row: Row) -> dict[str, Any]:
    """The stored properties of a relationship from its net row (absent values left out)."""
    return {name: row[pos] for name, pos in spec.props if row[pos] is not None}
