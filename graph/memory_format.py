"""What MemoryStore's files hold: the document's tables and the journal's operations.

The document is ``{"format", "version", "generation", <table>: [rows]}`` with rows in
``graph.rows`` shapes; a journal line is ``{"base": GENERATION, "ops": [[OP, ROWS], ...]}``.
Both are parsed as JSON and every row is checked on the way in, so nothing is ever unpickled
and a damaged file is a StoreError, never a half-built graph. How and when the files are
written, locked and re-read is ``graph.memory_file``'s.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import networkx as nx

from kgrec.graph.rows import check_row
from kgrec.graph.schema import Label, Rel
from kgrec.graph.store_errors import StoreError

#: What the document says it is; a document of another version is refused, not guessed at.
FORMAT = "kgrec-memory-store"
FORMAT_VERSION = 1

#: Tables of the document, in the order they are applied (nodes first).
TABLE_NAMES = ("users", "items", "tags", "entities", "attributes", "interacted", "tagged", "has_tag", "follows",
               "related", "disliked", "hidden", "has_attribute")
#: Tables added after the first format: a document written before them simply has none.
OPTIONAL_TABLES = ("disliked", "hidden", "attributes", "has_attribute")
#: Journal operations besides the table upserts: a list of keys, or of (user, item) pairs.
DELETES = ("delete_users", "delete_items", "delete_interactions", "delete_dislikes")
PAIR_DELETES = ("delete_interactions", "delete_dislikes")

Tables = dict[str, list[Any]]


def check_op(op: Any) -> list[Any]:
    """One journal operation ``[name, rows]`` with every row checked; ValueError otherwise."""
    if type(op) is not list or len(op) != 2 or type(op[1]) is not list:
        raise ValueError(f"{str(op)[:80]} is not an operation [name, rows]")
    name, rows = op
    if name in TABLE_NAMES:
        op[1] = [check_row(name, row) for row in rows]  # rows of an older format come back padded
    elif name in DELETES:
        pairs = name in PAIR_DELETES
        for key in rows:
            keys = key if pairs and type(key) is list and len(key) == 2 else [key]
            if (pairs and keys is not key) or not all(type(k) is str and k for k in keys):
                raise ValueError(f"{name}: {key!r} is not a {'(user, item) pair' if pairs else 'key'}")
    else:
        raise ValueError(f"unknown operation {name!r}")
    return op


def read_document(path: Path) -> tuple[Tables, str | None]:
    """The checked tables of a document and its generation (None for files from before journals)."""
    try:
        with gzip.open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"{path} is unreadable or not a kgrec memory store: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StoreError(f"{path} is not a kgrec memory store file")
    if doc.get("version") != FORMAT_VERSION:
        raise StoreError(f"{path}: store format version {doc.get('version')} is not {FORMAT_VERSION}")
    generation = doc.get("generation")
    if generation is not None and type(generation) is not str:
        raise StoreError(f"{path}: corrupt store file: generation {generation!r} is not a string")
    tables: Tables = {}
    for table in TABLE_NAMES:
        rows = doc.get(table, [] if table in OPTIONAL_TABLES else None)
        if not isinstance(rows, list):
            raise StoreError(f"{path}: corrupt store file: {table!r} is not a list")
        try:
            tables[table] = [check_row(table, row) for row in rows]
        except ValueError as exc:
            raise StoreError(f"{path}: corrupt {table} row: {exc}") from exc
    return tables, generation


def graph_tables(graph: nx.MultiDiGraph) -> Tables:
    """A MemoryStore graph as the document's row lists (the shapes its ``_put_*`` methods apply)."""
    doc: Tables = {k: [] for k in TABLE_NAMES}
    for (label, key), data in graph.nodes(data=True):
        if label is Label.USER:
            doc["users"].append((key, data["attrs"]))
        elif label is Label.ITEM:
            doc["items"].append((key, data.get("title"), data["attrs"], data.get("location")))
            if data.get("hidden"):
                doc["hidden"].append((key, True))
        elif label is Label.TAG:
            doc["tags"].append((key, data.get("name"), data.get("kind")))
        elif label is Label.ATTRIBUTE:
            doc["attributes"].append((key, data.get("kind"), data.get("value"), data.get("name")))
        elif label is Label.IMPRESSION:  # a log in its own file (graph.memory_impressions), edges too
            continue
        else:
            doc["entities"].append((key, data.get("label")))
    rows = {Rel.INTERACTED: doc["interacted"], Rel.TAGGED: doc["tagged"], Rel.HAS_TAG: doc["has_tag"],
            Rel.FOLLOWS: doc["follows"], Rel.RELATED: doc["related"], Rel.DISLIKED: doc["disliked"],
            Rel.HAS_ATTRIBUTE: doc["has_attribute"]}
    edges = ((src, dst, data) for (_, src), nbrs in graph._succ.items()  # graph.edges(data=True), unwrapped
             for (_, dst), keyed in nbrs.items() for data in keyed.values())
    for src, dst, data in edges:
        rel, p = data["rel"], data["props"]
        if rel is Rel.SAW or rel is Rel.SHOWS:
            continue
        if rel is Rel.INTERACTED:
            rows[rel].append((src, dst, p["weight"], p.get("rating"), p.get("ts")))
        elif rel is Rel.TAGGED:
            rows[rel].append((src, dst, p["tag"], p.get("ts")))
        elif rel is Rel.HAS_TAG:
            rows[rel].append((src, dst, p["count"]))
        elif rel is Rel.FOLLOWS:
            rows[rel].append((src, dst, p["weight"]))
        elif rel is Rel.DISLIKED:
            rows[rel].append((src, dst, p.get("ts")))
        elif rel is Rel.HAS_ATTRIBUTE:
            rows[rel].append((src, dst))
        else:
            rows[rel].append((src, p["predicate"], dst))
    return doc
