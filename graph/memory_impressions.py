"""MemoryStore's impressions (``graph.impressions``): nodes keyed ``(Label.IMPRESSION, id)``
carrying the Neo4j node's properties, a SAW edge from the user and a SHOWS edge to the item.

They are a log, written at the pace of serving, so they do not go through the graph's document
and journal (whose compaction rewrites the whole graph): each write appends one fsync'd line to
their own append-only file, ``impressions.jsonl`` (``{"ops": [["impressions", rows],
["outcomes", rows]]}``, rows in ``graph.rows`` shapes, checked again when read back), under the
directory's lock. Other processes take the new lines in at their next ``refresh`` (one more
``stat``). Both appliers are idempotent — an impression already stored is left as it is, an
outcome already marked keeps its first time — so two workers writing the same batch, or a line
read twice, give one impression once. Compaction leaves the file alone; ``clear`` empties it.

Impressions do not move the store's change counter (which would make every server re-read every
user at each batch): each user has a counter of their own, the ``impressions_token`` of
``GraphStore.feedback``, and their shown and skipped items are kept up to date as an index.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx
import orjson

from kgrec.graph.impression_rows import check_impressions
from kgrec.graph.impressions import OUTCOMES, Impression, ImpressionStore, Outcome, order_key
from kgrec.graph.rows import check_row, check_rows, distinct
from kgrec.graph.schema import Label, Rel
from kgrec.graph.store_errors import StoreError

IMPRESSIONS_NAME = "impressions.jsonl"
#: Appends are fsync'd at most this often: a log written at the pace of serving must not hold the
#: directory lock for a disk flush per batch (5-25 ms here). A power failure may lose the last
#: second of impressions (a process that exits or is killed loses nothing: the OS has the bytes).
SYNC_SECONDS = 1.0
#: Impressions applied between two ``gc.freeze()`` calls (``_freeze_now_and_then``).
FREEZE_EVERY = 2_000
_UNFROZEN = 0
_SAW, _SHOWS = Rel.SAW.value, Rel.SHOWS.value
#: Impression properties in ``impressions`` row order (``Impression.row``).
_NAMES = ("id", "request", "user", "item", "position", "at", "policy", "model", "source", "propensity", "score",
          "explored", "eps", "tau", "protect", "pool", "pool_logits", "chosen_at", "disliked_at")


def put_impressions(store: Any, rows: list[Any]) -> None:
    """Apply ``impressions`` rows to the store's graph (new ids only; the first row of an id stands)."""
    graph: nx.MultiDiGraph = store.graph
    fresh: dict[str, Any] = {}
    for r in rows:
        if (Label.IMPRESSION, r[0]) not in graph and r[0] not in fresh:
            fresh[r[0]] = r
    if not fresh:
        return
    before = graph.number_of_nodes()
    store._ensure(Label.USER, (r[2] for r in fresh.values()))
    store._ensure(Label.ITEM, (r[3] for r in fresh.values()))
    if graph.number_of_nodes() != before:
        store._version += 1  # a user or item the graph did not hold: the graph itself changed
    undo = store._undo
    for key, row in fresh.items():
        node = (Label.IMPRESSION, key)
        if undo is not None:
            undo.node(node)
        graph.add_node(node, **{name: (tuple(v) if type(v) is list else v)
                                for name, v in zip(_NAMES, row, strict=True) if v is not None})
    store._edges(Rel.SAW, (((Label.USER, r[2]), (Label.IMPRESSION, k), _SAW, {}) for k, r in fresh.items()))
    store._edges(Rel.SHOWS, (((Label.IMPRESSION, k), (Label.ITEM, r[3]), _SHOWS, {}) for k, r in fresh.items()))
    for row in fresh.values():
        skipped = row[17] is None and row[18] is None
        store._index_impression(row[2], row[3], 1, int(skipped))
    _freeze_now_and_then(len(fresh))


def _freeze_now_and_then(added: int) -> None:
    """Move the impressions applied so far out of the cyclic collector's reach once every
    ``FREEZE_EVERY`` of them. The log only grows while a server runs, and a full collection walks
    every tracked object: at 150,000 impressions one took 438 ms, a pause for every request in
    flight. Frozen objects are still freed by reference counting (a node removed is gone)."""
    global _UNFROZEN
    _UNFROZEN += added
    if _UNFROZEN >= FREEZE_EVERY:
        _UNFROZEN = 0
        gc.freeze()


def put_outcomes(store: Any, rows: list[Any]) -> None:
    """Apply ``outcomes`` rows: set ``chosen_at``/``disliked_at`` where not set yet."""
    nodes = store.graph.nodes
    undo = store._undo
    for key, kind, at in rows:
        data = nodes.get((Label.IMPRESSION, key))
        prop = OUTCOMES[kind]
        if data is None or prop in data:
            continue
        if undo is not None:
            undo.node((Label.IMPRESSION, key))
        was_skipped = "chosen_at" not in data and "disliked_at" not in data
        data[prop] = at
        store._index_impression(data["user"], data["item"], 0, -int(was_skipped))


def impression_row(data: dict[str, Any]) -> tuple[Any, ...]:
    """A stored impression node's ``impressions`` row."""
    return tuple(list(v) if type(v) is tuple else v for v in (data.get(name) for name in _NAMES))


_APPLY = {"impressions": put_impressions, "outcomes": put_outcomes}


class MemoryImpressions(ImpressionStore):
    """``ImpressionStore`` for MemoryStore (mixed in: uses its graph, files, ``_atomic`` and version)."""

    graph: nx.MultiDiGraph
    directory: Path
    _rel_counts: Any
    _files: Any
    _version: int
    _undo: Any
    _closed: bool
    #: (inode, bytes read) of the impressions file as this store last read or wrote it
    _imp_seen: tuple[int, int] = (0, 0)
    _imp_synced: float = 0.0
    #: user -> item -> [times shown, times shown and not chosen]; user -> changes; reloads so far
    _imp_index: dict[str, dict[str, list[int]]]
    _imp_rev: dict[str, int]
    _imp_generation: int = 0

    # -- the per-user index and token ------------------------------------------------------------
    def _index_impression(self, user: str, item: str, shown: int, skipped: int) -> None:
        counts = self._imp_index.setdefault(user, {}).setdefault(item, [0, 0])
        counts[0] += shown
        counts[1] += skipped
        self._imp_rev[user] = self._imp_rev.get(user, 0) + 1

    def _impressions_token(self, user: str) -> tuple[int, int]:
        return (self._imp_generation, self._imp_rev.get(user, 0))

    def _reindex_impressions(self) -> None:
        """The index rebuilt from the graph's impression nodes (after a reload or a failed write)."""
        self._imp_index, self._imp_rev = {}, {}
        self._imp_generation += 1
        for (label, _), d in self.graph.nodes(data=True):
            if label is Label.IMPRESSION:
                skipped = "chosen_at" not in d and "disliked_at" not in d
                counts = self._imp_index.setdefault(d["user"], {}).setdefault(d["item"], [0, 0])
                counts[0] += 1
                counts[1] += int(skipped)

    # -- the file ---------------------------------------------------------------------------
    @property
    def _imp_path(self) -> Path:
        return self.directory / IMPRESSIONS_NAME

    def _imp_stat(self) -> tuple[int, int]:
        try:
            st = self._imp_path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_size)

    def _load_impressions(self) -> None:
        """Read the whole file (at open, after a full re-read of the graph)."""
        self._imp_seen = (0, 0)
        self._reindex_impressions()
        with self._files._locked(exclusive=False):
            self._take_impressions()

    def _refresh_impressions(self) -> None:
        """Take in what other processes appended (a ``stat`` when nothing was)."""
        if self._closed:
            return
        if self._imp_stat() == self._imp_seen:
            return
        with self._files._locked(exclusive=False):
            self._take_impressions()

    def _take_impressions(self) -> None:
        """Apply the file's lines after those already read (the caller holds the lock); a file that
        was replaced or emptied is read again from its start."""
        inode, size = self._imp_stat()
        seen_inode, offset = self._imp_seen
        if inode != seen_inode or size < offset:
            self._drop_impression_nodes()
            offset = 0
        if size == offset:
            self._imp_seen = (inode, offset)
            return
        with self._imp_path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(size - offset)
        end = data.rfind(b"\n") + 1  # an unfinished last line is left for its writer to finish or cut
        for n, line in enumerate(data[:end].split(b"\n")[:-1], 1):
            try:
                entry = orjson.loads(line)
                ops = entry["ops"]
                for name, rows in ops:
                    checked = [check_row(name, row) for row in rows]
                    _APPLY[name](self, checked)
            except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"{self._imp_path}: corrupt line after byte {offset} ({n}): {exc}") from exc
        self._imp_seen = (inode, offset + end)

    def _append_impressions(self, ops: list[list[Any]]) -> None:
        """Append one line under the directory's exclusive lock (others' lines are taken in first)."""
        line = orjson.dumps({"ops": ops}) + b"\n"  # rows were checked: finite numbers, storable text
        with self._files._locked(exclusive=True):
            self._take_impressions()
            fd = os.open(self._imp_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.ftruncate(fd, self._imp_seen[1])  # a torn tail left by a killed writer goes
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                now = time.monotonic()
                if now - self._imp_synced >= SYNC_SECONDS:
                    os.fsync(fd)
                    self._imp_synced = now
            finally:
                os.close(fd)
            self._imp_seen = self._imp_stat()

    def _drop_impression_nodes(self) -> None:
        gone = [n for n in self.graph.nodes if n[0] is Label.IMPRESSION]
        for node in gone:
            self._rel_counts[Rel.SAW] -= self.graph.in_degree(node)
            self._rel_counts[Rel.SHOWS] -= self.graph.out_degree(node)
        self.graph.remove_nodes_from(gone)
        self._reindex_impressions()

    def _clear_impressions(self) -> None:
        """Empty the file and the index (``clear``; the graph is emptied by the caller)."""
        with self._files._locked(exclusive=True):
            self._imp_path.unlink(missing_ok=True)
        self._imp_seen = (0, 0)
        self._imp_index, self._imp_rev = {}, {}
        self._imp_generation += 1

    # -- ImpressionStore -----------------------------------------------------------------------
    def _log(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        """Append, then apply: what memory shows was written first (a failed append applies
        nothing). Not ``MemoryStore._atomic``: the graph's change counter stays, and there is
        nothing for the journal."""
        if self._closed:
            raise StoreError("the store is closed")
        self._append_impressions([[name, [list(r) for r in rows]]])
        try:
            _APPLY[name](self, rows)
        except BaseException:  # memory lost step with the file: read it again
            self._drop_impression_nodes()
            self._load_impressions()
            raise

    def log_impressions(self, rows: Iterable[Impression], checked: bool = False) -> int:
        imps = list(rows)
        data = [r.row() for r in imps] if checked else check_impressions(imps)
        if data:
            self._log("impressions", data)
        return distinct("impressions", data)

    def get_impressions(self, ids: Iterable[str]) -> dict[str, Impression]:
        nodes = self.graph.nodes
        out = {}
        for key in dict.fromkeys(ids):
            data = nodes.get((Label.IMPRESSION, key))
            if data is not None:
                out[key] = Impression.from_row(impression_row(data))
        return out

    def record_outcomes(self, rows: Iterable[Outcome]) -> int:
        nodes = self.graph.nodes
        fresh: dict[tuple[str, str], Outcome] = {}
        for r in rows:
            data = nodes.get((Label.IMPRESSION, r.impression))
            if data is not None and OUTCOMES.get(r.kind, "") not in data:
                fresh.setdefault((r.impression, r.kind), r)
        if fresh:
            self._log("outcomes", check_rows("outcomes", [r.row() for r in fresh.values()]))
        return len(fresh)

    def logged_impressions(self, since: float | None = None, until: float | None = None) -> list[Impression]:
        found = [Impression.from_row(impression_row(d)) for (label, _), d in self.graph.nodes(data=True)
                 if label is Label.IMPRESSION and (since is None or d["at"] >= since)
                 and (until is None or d["at"] < until)]
        return sorted(found, key=order_key)

    def impression_count(self) -> int:
        return int(self._rel_counts[Rel.SHOWS])

    def _user_impressions(self, user: str) -> tuple[dict[str, int], dict[str, int]]:
        """(item -> times shown, item -> times shown and not chosen) for one user (from the index)."""
        counts = self._imp_index.get(user, {})
        return {i: c[0] for i, c in counts.items()}, {i: c[1] for i, c in counts.items() if c[1]}
