"""Neo4jStore's whole-graph writes: create-only into an empty database, or merge into any.

Both start from ``graph.bulk`` net rows (checked, one per node and relationship). Nodes are
written first, per label, and return their element ids; relationship rows then name their ends
by element id (no index lookup), sorted by start node so a batch touches few node records, and
go in batches of managed write transactions. ``create`` CREATEs nodes and relationships,
``workers`` transactions at a time (the driver retries a batch that hit a deadlock; it was
rolled back whole). ``merge`` MERGEs them with the per-call upserts' semantics, one transaction
at a time: a MERGE that creates locks both end nodes, and concurrent batches sharing dense nodes
(popular items, tags) deadlocked and waited out the driver's ~1 s retry delay. Every relationship
statement returns how many rows it wrote, and a batch that wrote fewer is rolled back with a
``StoreError``: an end node that vanished or was replaced meanwhile never goes unnoticed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from operator import itemgetter
from typing import Any

from kgrec.graph.bulk import NODE_TABLES, REL_TABLES, BulkGraph, NodeTable, RelTable, Row, Rule, node_properties
from kgrec.graph.neo4j_bulk_cypher import CREATE_NODES, CREATE_RELS, MERGE_RELS, UPSERT_NODE_ROWS
from kgrec.graph.neo4j_cypher import MERGE_NODES
from kgrec.graph.schema import ATTR_PREFIX, ENDPOINTS, Label
from kgrec.graph.store_errors import StoreError

#: Concurrent write transactions in create mode: the client packs one batch while the server
#: writes another.
WORKERS = 2
#: The ``COUNT_KEYS`` kind a node table's time and progress count under (entities come from facts).
NODE_KIND = {"users": "users", "items": "items", "tags": "tags", "entities": "facts", "attributes": "attributes"}

Progress = Callable[[int], object]
#: The store's managed write: runs one unit of work in a retried write transaction.
WriteTx = Callable[[Callable[[Any], Any]], Any]


def write_bulk(
    write: WriteTx,
    graph: BulkGraph,
    *,
    create: bool,
    batch: int,
    workers: int,
    progress: Progress,
    timings: dict[str, float],
) -> None:
    """Write ``graph`` through ``write`` (the store's managed write transaction); see the module docstring."""
    workers = workers if create else 1
    ids: dict[Label, dict[str, str]] = {}
    for spec in NODE_TABLES:
        started = time.perf_counter()
        ids[spec.label] = _write_nodes(write, spec, graph.nodes[spec.label], create, batch, workers)
        kind = NODE_KIND[spec.table]
        timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - started
        if kind != "facts":
            progress(graph.written[kind])
    for rel_spec in REL_TABLES:
        started = time.perf_counter()
        rows = graph.rels.get(rel_spec.table, [])
        statement = (CREATE_RELS if create else MERGE_RELS)[rel_spec.rel]
        _run(write, statement, "rows", _rel_batches(rel_spec, rows, ids, batch), workers,
             partial(_check_written, spec=rel_spec), lambda _, b: progress(len(b)))
        progress(graph.written[rel_spec.kind] - len(rows))  # duplicates folded away
        timings[rel_spec.kind] = timings.get(rel_spec.kind, 0.0) + time.perf_counter() - started


def _write_nodes(
    write: WriteTx, spec: NodeTable, known: dict[str, Row | None], create: bool, batch: int, workers: int
) -> dict[str, str]:
    """Create or merge one label's nodes; returns key -> element id."""
    ids: dict[str, str] = {}

    def keep(result: dict[str, Any], _: Sequence[Any]) -> None:
        ids.update(zip(result["keys"], result["ids"], strict=True))

    if create:
        props = [node_properties(spec, key, row) for key, row in known.items()]
        _run(write, CREATE_NODES[spec.label], "rows", _batches(props, batch), workers, _no_check, keep)
    else:
        explicit = [_prefixed(spec, row) for row in known.values() if row is not None]
        _run(write, UPSERT_NODE_ROWS[spec.label], "rows", _batches(explicit, batch), workers, _no_check, keep)
        named = [key for key, row in known.items() if row is None]
        _run(write, MERGE_NODES[spec.label], "ids", _batches(named, batch), workers, _no_check, keep)
    if len(ids) != len(known):  # a CREATE or MERGE always returns its node
        raise StoreError(f"wrote {len(ids):,} of {len(known):,} {spec.label.value} nodes; load again in merge mode")
    return ids


def _prefixed(spec: NodeTable, row: Row) -> list[Any]:
    """A merge-mode node row: attribute dicts as their ``attr_*`` properties."""
    return [row[0], *(
        {ATTR_PREFIX + k: v for k, v in value.items()} if rule is Rule.ATTRS else value
        for (_, rule), value in zip(spec.fields, row[1:], strict=True)
    )]


def _rel_batches(spec: RelTable, rows: list[Row], ids: dict[Label, dict[str, str]], size: int) -> Iterator[list[Any]]:
    """Batches of ``[start id, end id, properties...]``, sorted by start node (``rows`` is sorted
    in place), each built only when it is about to be sent."""
    start_label, end_label = ENDPOINTS[spec.rel]
    starts, ends = ids[start_label], ids[end_label]
    s, e = spec.start, spec.end
    props = itemgetter(*(pos for _, pos in spec.props)) if spec.props else None
    rows.sort(key=itemgetter(s))
    for first in range(0, len(rows), size):
        chunk = rows[first : first + size]
        if props is None:
            yield [[starts[r[s]], ends[r[e]]] for r in chunk]
        elif len(spec.props) == 1:
            yield [[starts[r[s]], ends[r[e]], props(r)] for r in chunk]
        else:
            yield [[starts[r[s]], ends[r[e]], *props(r)] for r in chunk]


def _no_check(result: dict[str, Any], batch: Sequence[Any]) -> None:
    """Node statements write every row they are given."""


def _check_written(written: dict[str, Any], batch: Sequence[Any], spec: RelTable) -> None:
    if written["written"] != len(batch):
        raise StoreError(
            f"{spec.rel.value}: {written['written']:,} of {len(batch):,} relationships of a batch found both "
            "their end nodes (another client deleted nodes during the load?); the batch was not written, "
            "load again in merge mode"
        )


def _batches(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


#: A callback on (result, batch); what it returns is ignored.
Check = Callable[[dict[str, Any], Sequence[Any]], object]


def _run(
    write: WriteTx,
    statement: str,
    param: str,
    batches: Iterator[list[Any]],
    workers: int,
    check: Check,
    done: Check,
) -> None:
    """Run ``statement`` once per batch (as ``$param``), each in its own managed write
    transaction, ``workers`` at a time. ``check(result, batch)`` runs inside the transaction
    (raising there rolls the batch back); ``done(result, batch)`` runs in this thread once the
    batch is committed. The first failure stops the batches not yet started and is raised."""

    def one(batch: list[Any]) -> tuple[dict[str, Any], list[Any]]:
        def work(tx: Any) -> dict[str, Any]:
            result = tx.run(statement, {param: batch}).single(strict=True).data()
            check(result, batch)
            return result

        return write(work), batch

    if workers <= 1:
        for batch in batches:
            done(*one(batch))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="kgrec-load") as pool:
        pending: set[Future[tuple[dict[str, Any], list[Any]]]] = set()
        for batch in batches:
            pending.add(pool.submit(one, batch))
            if len(pending) > workers:  # bounded: a batch is packed shortly before it is sent
                pending = _drain(pending, done, FIRST_COMPLETED)
        _drain(pending, done, ALL_COMPLETED)


def _drain(pending: set[Future[Any]], done: Check, until: str) -> set[Future[Any]]:
    """Wait for the first or all batches (``until``) and hand finished ones to ``done``; on a
    failure, cancel what has not started, wait for what has, and raise it."""
    finished, rest = wait(pending, return_when=until)
    for future in finished:
        error = future.exception()
        if error is not None:
            for other in rest:
                other.cancel()
            wait(rest)
            raise error
        done(*future.result())
    return rest
