"""MemoryStore: the embedded, zero-setup store — a networkx ``MultiDiGraph`` in a directory.

It mirrors the Neo4j model exactly: nodes are keyed ``(label, key)``, relationships carry
the same types and properties, and edge keys encode the uniqueness rules of
``graph.schema`` (one INTERACTED per pair, one TAGGED per (user, item, tag), ...), which is
what makes every upsert idempotent. The graph lives in memory; ``flush()`` appends the writes
since the last flush to a journal, and the whole graph is rewritten as one gzipped JSON
document only on compaction (bulk loads, ``clear``, a journal past ``journal_limit``, or
``compact()``); see ``graph.memory_file``. Reads are ``graph.memory_reads``'s. Every row is
checked by ``graph.rows`` before it is written (a whole graph once, column-wise, by
``graph.bulk.check_records``) and again when it is read back: nothing a user can hand in is
ever unpickled.

A write is atomic in memory too: its rows are checked first, and a write or a flush that
fails leaves no trace in what the store shows (``graph.memory_undo`` puts back what a failed
write changed; a failed flush reloads the last durable state from the files).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from kgrec.graph import records as rec
from kgrec.graph.bulk import RECORD_TABLES, CheckedRecords
from kgrec.graph.memory_feedback import MemoryFeedback
from kgrec.graph.memory_file import FILE_NAME, JOURNAL_LIMIT, JOURNAL_NAME, LOCK_NAME, StoreFiles
from kgrec.graph.memory_format import TABLE_NAMES, graph_tables
from kgrec.graph.memory_reads import Located
from kgrec.graph.memory_rows import TABLES, RowAppliers
from kgrec.graph.memory_undo import Undo
from kgrec.graph.records import GraphRecords
from kgrec.graph.rows import check_rows, distinct
from kgrec.graph.schema import COUNT_KEYS, Label, Rel
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError

if TYPE_CHECKING:
    from kgrec.graph.snapshot import GraphSnapshot

__all__ = ["FILE_NAME", "JOURNAL_NAME", "LOCK_NAME", "TABLES", "MemoryStore"]


class MemoryStore(RowAppliers, MemoryFeedback, GraphStore):
    """A networkx graph persisted atomically in ``directory`` (created on first flush)."""

    def __init__(self, directory: str | os.PathLike[str], journal_limit: int = JOURNAL_LIMIT) -> None:
        self.directory = Path(directory)
        self.graph = nx.MultiDiGraph()
        self._rel_counts: Counter[Rel] = Counter()
        self._version = 0
        self._snapshot: tuple[int, GraphSnapshot] | None = None
        self._closed = False
        self._undo: Undo | None = None
        #: Moves with every change of an item's ``hidden`` flag (never reset: a token, not a count).
        self._hidden_rev = 0
        self._hidden_cache: tuple[int, frozenset[str]] | None = None
        self._located: Located | None = None
        self._files = StoreFiles(self.directory, journal_limit)
        self._read_files()

    def _read_files(self) -> None:
        """(Re)build the graph from the document and the journal: the last durable state."""
        if self.directory.exists() and not self.directory.is_dir():
            raise StoreError(f"{self.directory} is not a directory; memory:// needs a directory path")
        self.graph = nx.MultiDiGraph()
        self._rel_counts.clear()
        self._version += 1
        self._hidden_rev += 1
        self._files.discard_pending()  # operations recorded but never flushed go with the memory that held them
        tables, ops = self._files.read()
        for table in TABLE_NAMES:
            TABLES[table](self, tables[table])
        for op, rows in ops:
            self._apply(op, rows)
        self._load_impressions()  # their own append-only file (graph.memory_impressions)
        self._dirty = False

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Apply one write so that, if it raises, the graph and the pending journal are as before."""
        self._touch()
        undo = self._undo = Undo(self.graph, self._rel_counts)
        pending = self._files.mark()
        try:
            yield
        except BaseException:
            undo.rollback(self._rel_counts)
            self._files.reset_to(pending)
            self._hidden_rev += 1  # a rolled-back write may have touched a hidden flag
            raise
        finally:
            self._undo = None

    @contextmanager
    def _fresh(self) -> Iterator[None]:
        """One write into a store that holds nothing it writes to (``create`` mode, into an empty
        store): if it fails, every node it added goes with its relationships, so it keeps no
        per-node or per-edge undo records."""
        self._touch()
        before = set(self.graph)  # nothing, or nodes of kinds that are not counted
        rel_counts = Counter(self._rel_counts)
        pending = self._files.mark()
        try:
            yield
        except BaseException:
            if before:
                self.graph.remove_nodes_from([node for node in self.graph if node not in before])
            else:
                self.graph.clear()
            self._rel_counts.clear()
            self._rel_counts.update(rel_counts)
            self._files.reset_to(pending)
            self._hidden_rev += 1
            raise

    # -- node and edge primitives -------------------------------------------------------
    def _touch(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        self._dirty = True
        self._version += 1

    # -- writes -------------------------------------------------------------------------
    def _write(self, table: str, rows: list[tuple[Any, ...]]) -> int:
        """Check every row first (``graph.rows``, as Neo4jStore does), so a bad row leaves the
        whole batch unwritten and nothing unstorable ever reaches the files."""
        check_rows(table, rows)
        with self._atomic():
            TABLES[table](self, rows)
            self._files.record(table, rows)
        return distinct(table, rows)

    def _apply(self, op: str, rows: list[Any]) -> None:
        """Replay one journal operation (rows already checked by ``graph.memory_file``)."""
        if op == "delete_users":
            for key in rows:
                self._remove_node((Label.USER, key))
        elif op == "delete_items":
            for key in rows:
                self._remove_node((Label.ITEM, key))
        elif op == "delete_interactions":
            for user, item in rows:
                self._remove_edge(user, item, Rel.INTERACTED)
        elif op == "delete_dislikes":
            for user, item in rows:
                self._remove_edge(user, item, Rel.DISLIKED)
        else:
            TABLES[op](self, rows)

    def upsert_users(self, rows: Iterable[rec.User]) -> int:
        return self._write("users", [(r.id, r.attrs) for r in rows])

    def upsert_items(self, rows: Iterable[rec.Item]) -> int:
        return self._write("items", [(r.id, r.title, r.attrs, r.location) for r in rows])

    def upsert_attributes(self, rows: Iterable[rec.Attribute]) -> int:
        return self._write("attributes", [(r.id, r.kind, r.value, r.name) for r in rows])

    def upsert_user_attributes(self, rows: Iterable[rec.UserAttribute]) -> int:
        return self._write("has_attribute", [(r.user, r.attribute) for r in rows])

    def _write_profiles(self, users: list[rec.User], attributes: list[rec.Attribute],
                        links: list[rec.UserAttribute]) -> int:
        """Users, their Attribute nodes and links as one write: all of it or, on failure, none."""
        tables = (("users", [(r.id, r.attrs) for r in users]),
                  ("attributes", [(r.id, r.kind, r.value, r.name) for r in attributes]),
                  ("has_attribute", [(r.user, r.attribute) for r in links]))
        for table, rows in tables:
            check_rows(table, rows)
        with self._atomic():
            for table, rows in tables:
                TABLES[table](self, rows)
                self._files.record(table, rows)
        return distinct("users", tables[0][1])

    def upsert_tags(self, rows: Iterable[rec.Tag]) -> int:
        return self._write("tags", [(r.id, r.name, r.kind) for r in rows])

    def upsert_interactions(self, rows: Iterable[rec.Interaction]) -> int:
        return self._write("interacted", [(r.user, r.item, r.weight, r.rating, r.ts) for r in rows])

    def upsert_taggings(self, rows: Iterable[rec.Tagging]) -> int:
        return self._write("tagged", [(r.user, r.item, r.tag, r.ts) for r in rows])

    def upsert_item_tags(self, rows: Iterable[rec.ItemTag]) -> int:
        return self._write("has_tag", [(r.item, r.tag, r.count) for r in rows])

    def upsert_follows(self, rows: Iterable[rec.Follow]) -> int:
        return self._write("follows", [(r.user, r.friend, r.weight) for r in rows])

    def upsert_facts(self, rows: Iterable[rec.Fact]) -> int:
        """Checked as whole facts, stored (and journaled) as entities and RELATED edges."""
        facts = check_rows("facts", [(r.item, r.predicate, r.entity, r.entity_label) for r in rows])
        with self._atomic():
            for table, part in (("entities", [(e, lb) for _, _, e, lb in facts]),
                                ("related", [(i, p, e) for i, p, e, _ in facts])):
                TABLES[table](self, part)
                self._files.record(table, part)
        return distinct("facts", facts)

    def upsert_dislikes(self, rows: Iterable[rec.Dislike]) -> int:
        return self._write("disliked", [(r.user, r.item, r.ts) for r in rows])

    def set_hidden(self, ids: Iterable[str], hidden: bool) -> int:
        rows = check_rows("hidden", [(k, hidden) for k in dict.fromkeys(ids)])
        found = [r for r in rows if (Label.ITEM, r[0]) in self.graph]
        with self._atomic():
            self._put_hidden(found)
            self._files.record("hidden", found)
        return len(found)

    def _delete_nodes(self, label: Label, op: str, ids: Iterable[str]) -> int:
        keys = set(ids)
        with self._atomic():
            removed = [k for k in keys if self._remove_node((label, k))]
            self._files.record(op, removed)
        return len(removed)

    def delete_users(self, ids: Iterable[str]) -> int:
        return self._delete_nodes(Label.USER, "delete_users", ids)

    def delete_items(self, ids: Iterable[str]) -> int:
        return self._delete_nodes(Label.ITEM, "delete_items", ids)

    def _remove_edge(self, user: str, item: str, rel: Rel) -> bool:
        u, i = (Label.USER, user), (Label.ITEM, item)
        if not self.graph.has_edge(u, i, rel.value):
            return False
        if self._undo is not None:
            self._undo.edge(u, i, rel.value)
        self.graph.remove_edge(u, i, rel.value)
        self._rel_counts[rel] -= 1
        return True

    def _delete_pairs(self, rel: Rel, op: str, pairs: Iterable[tuple[str, str]]) -> int:
        unique = set(pairs)
        with self._atomic():
            removed = [[u, i] for u, i in unique if self._remove_edge(u, i, rel)]
            self._files.record(op, removed)
        return len(removed)

    def delete_interactions(self, pairs: Iterable[tuple[str, str]]) -> int:
        return self._delete_pairs(Rel.INTERACTED, "delete_interactions", pairs)

    def delete_dislikes(self, pairs: Iterable[tuple[str, str]]) -> int:
        return self._delete_pairs(Rel.DISLIKED, "delete_dislikes", pairs)

    def clear(self) -> None:
        self._touch()
        self._clear_impressions()
        self.graph.clear()
        self._rel_counts.clear()
        self._hidden_rev += 1
        self._files.compact_next()

    def _write_whole(
        self, checked: CheckedRecords, create: bool, batch: int, progress: Callable[[int], object],
        timings: dict[str, float],
    ) -> dict[str, int]:
        """The checked rows as they are (``graph.bulk.check_records`` checked each once), kind by
        kind in batches of ``batch``. In ``create`` mode the whole graph is one write (``_fresh``);
        in ``merge`` mode each batch is its own atomic write."""
        with self._fresh() if create else nullcontext():
            for kind in COUNT_KEYS:
                started = time.perf_counter()
                tables = RECORD_TABLES[kind]
                for table, _ in tables:
                    rows = checked.tables[table]
                    for start in range(0, len(rows), batch):
                        chunk = rows[start : start + batch]
                        with nullcontext() if create else self._atomic():
                            TABLES[table](self, chunk)
                            self._files.record(table, chunk)
                        if table == tables[-1][0]:
                            progress(len(chunk))
                timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - started
            if checked.hidden:
                rows = [(key, True) for key in dict.fromkeys(checked.hidden)]
                found = [r for r in rows if (Label.ITEM, r[0]) in self.graph]
                with nullcontext() if create else self._atomic():
                    self._put_hidden(found)
                    self._files.record("hidden", found)
        return dict(checked.written)

    def load(self, records: GraphRecords) -> dict[str, int]:
        """A bulk load is compacted into the document rather than journaled."""
        self._files.compact_next()
        return super().load(records)

    def compact(self) -> None:
        """Rewrite the whole graph as the document now and drop the journal."""
        if self._closed:
            raise StoreError("the store is closed")
        self._files.compact_next()
        self._dirty = True
        self.flush()

    def flush(self) -> None:
        """Append the writes since the last flush to the journal as one fsync'd line, or compact
        (new document through a temp file and ``os.replace``, then no journal) when there is no
        document yet, after a bulk write or ``clear``, or once the journal passed ``journal_limit``.
        Refuses when another process or store wrote the files since this one read them. A flush
        that fails discards every write since the last good one, in memory too (the graph is
        reloaded from the files), so what this store shows is always what is on disk."""
        if not self._dirty or self._closed:
            return
        try:
            self._files.flush(lambda: graph_tables(self.graph))
        except BaseException:
            self._files.discard_pending()
            try:
                self._read_files()
            except (StoreError, OSError):
                self._closed = True  # the files are gone or damaged: refuse further use
            raise
        self._dirty = False

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    # -- several processes on one directory (API workers) ----------------------------------
    def refresh(self) -> None:
        """Apply what other processes appended to the journal since this one last looked (a
        ``stat`` of two files when nothing changed), or re-read everything after a compaction.
        Skipped while this store holds writes of its own that it has not flushed. Impressions,
        in a file of their own, are taken in every time (``graph.memory_impressions``)."""
        self._refresh_impressions()
        if self._closed or self._dirty or not self._files.changed():
            return
        ops = self._files.poll()
        if ops is None:
            self._read_files()
            return
        for op, rows in ops:
            self._apply(op, rows)
        self._version += 1

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Lock the directory, take in other processes' writes, let the caller write, flush. If
        anything fails the graph is re-read from the files, so memory never keeps a write that
        was not made durable (no worker serves, and no later flush persists, a refused write)."""
        with self._files.hold():
            try:
                self.refresh()
                yield
                self.flush()
            except BaseException:
                self._read_files()
                raise

    def snapshot(self) -> GraphSnapshot:
        """Built from ``export()`` like every store's, and cached until the next write."""
        if self._snapshot is None or self._snapshot[0] != self._version:
            self._snapshot = (self._version, super().snapshot())
        return self._snapshot[1]
