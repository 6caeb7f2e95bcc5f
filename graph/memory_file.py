"""MemoryStore's files: one gzipped JSON document plus an append-only journal beside it.

``graph.json.gz`` holds the whole graph as row lists (``graph.rows`` shapes) and a random
``generation``; it is only ever replaced whole, through a temporary file and ``os.replace``.
``journal.jsonl`` holds what was flushed since: one line per flush,
``{"base": GENERATION, "ops": [[OP, ROWS], ...]}``, appended and fsync'd, so a small write costs
one short append instead of rewriting the document. Compaction writes a new document under a
new generation and then removes the journal; a journal whose ``base`` is not the document's is
the leftover of a compaction interrupted between those two steps, already folded in, and is
skipped. A last line without its newline is a flush that never finished: it is ignored with a
warning (never half-applied) and cut off by the next append. Any other damage is a StoreError.
Nothing is ever unpickled: both files are parsed as JSON and every row is checked.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from kgrec.graph.memory_format import FORMAT, FORMAT_VERSION, TABLE_NAMES, Tables, check_op, read_document
from kgrec.graph.store_errors import StoreError

log = logging.getLogger(__name__)

FILE_NAME = "graph.json.gz"
JOURNAL_NAME = "journal.jsonl"
#: Advisory lock file: flushes hold it exclusively, opening holds it shared, so no process reads
#: a document and a journal from two different moments or appends while another compacts.
LOCK_NAME = "graph.lock"
#: Compaction writes the new document here first (``rewrite``); a leftover is removed at open.
TEMP_PREFIX, TEMP_SUFFIX = ".graph-", ".tmp"
TEMP_PATTERN = f"{TEMP_PREFIX}*{TEMP_SUFFIX}"
#: Journal bytes past which the next flush compacts instead of appending (~30k small writes).
JOURNAL_LIMIT = 4 << 20
#: Rows written between two flushes past which the flush compacts: journaling a bulk load
#: would only store it twice.
BULK_ROWS = 10_000

Signature = tuple[int, int, int] | None


def _signature(path: Path) -> Signature:
    """Identity of a file on disk (a replace makes a new inode, an append a new size), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _document_bytes(doc: dict[str, Any]) -> bytes:
    """The document as compact UTF-8 JSON: orjson (several times faster on a whole graph), or the
    standard library for what orjson refuses (an integer beyond 64 bits in an old attribute)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable, not only its contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreFiles:
    """The document and journal of one directory, what this process last saw of them, and the
    operations written since the last flush."""

    def __init__(self, directory: Path, journal_limit: int = JOURNAL_LIMIT) -> None:
        self.directory = directory
        self.journal_limit = journal_limit
        self.document = directory / FILE_NAME
        self.journal = directory / JOURNAL_NAME
        self.generation: str | None = None
        #: Bytes at the start of the journal that are whole lines of this generation.
        self.journal_bytes = 0
        self._seen: tuple[Signature, Signature] = (None, None)
        self._pending: list[list[Any]] = []
        self._pending_rows = 0
        self._compact = False
        #: Whether this process holds the exclusive lock (``hold()``): inner steps do not re-lock.
        self._held = False

    def _signatures(self) -> tuple[Signature, Signature]:
        return (_signature(self.document), _signature(self.journal))

    @contextmanager
    def hold(self) -> Iterator[None]:
        """The exclusive lock for a read-modify-write spanning several steps (``MemoryStore.exclusive``)."""
        with self._locked(exclusive=True):
            self._held = True
            try:
                yield
            finally:
                self._held = False

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        if self._held:
            yield  # flock is per open file: taking it again through a new descriptor would deadlock
            return
        if not exclusive and not self.directory.is_dir():
            yield  # nothing to read, nothing to lock
            return
        if exclusive:
            self.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if exclusive:
                raise
            yield  # a read-only directory: its files cannot change under this reader either
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def read(self) -> tuple[Tables, list[list[Any]]]:
        """The document's tables (empty when there is none) and the journal operations after it."""
        self.remove_stale_temp_files()
        with self._locked(exclusive=False):
            return self._read()

    def remove_stale_temp_files(self) -> None:
        """Delete compaction temp files a killed process left behind (``rewrite`` removes its
        own on any error it lives through). Only while no other process holds the lock: a
        live compaction's temp file is never touched."""
        try:
            stale = list(self.directory.glob(TEMP_PATTERN))
        except OSError:
            return
        if not stale:
            return
        try:
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return  # someone is flushing now; the next open cleans up
        try:
            for path in stale:
                log.warning("removing %s, left by an interrupted compaction", path)
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _read(self) -> tuple[Tables, list[list[Any]]]:
        tables: Tables = {t: [] for t in TABLE_NAMES}
        self.generation = None
        if self.document.exists():
            tables, self.generation = read_document(self.document)
        ops = self._read_journal()
        self._seen = self._signatures()
        return tables, ops

    def _read_journal(self) -> list[list[Any]]:
        self.journal_bytes = 0
        try:
            data = self.journal.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the journal ends with a newline, as a finished flush leaves it
        if torn:
            log.warning("%s: ignoring an unfinished last line (%d bytes) left by an interrupted flush",
                        self.journal, len(torn))
        ops: list[list[Any]] = []
        for n, line in enumerate(lines, 1):
            try:
                entry = json.loads(line.decode("utf-8"))
                if not isinstance(entry, dict) or type(entry.get("ops")) is not list:
                    raise ValueError("not a journal entry {base, ops}")
                if entry.get("base") != self.generation:
                    if n == 1:
                        log.warning("%s was already folded into %s (an interrupted compaction); skipping it",
                                    self.journal, self.document)
                        return []
                    raise ValueError(f"base {entry.get('base')!r} is not the document's {self.generation!r}")
                ops.extend(check_op(op) for op in entry["ops"])
            except (UnicodeDecodeError, ValueError) as exc:
                raise StoreError(f"{self.journal}: corrupt line {n}: {exc}") from exc
        self.journal_bytes = len(data) - len(torn)
        return ops

    def changed(self) -> bool:
        """Whether the files differ from what this process last read or wrote (two ``stat`` calls)."""
        return self._signatures() != self._seen

    def poll(self) -> list[list[Any]] | None:
        """What other processes appended to the journal since this one last looked, or None when
        only a full re-read will do (the document was replaced by a compaction, or is new)."""
        with self._locked(exclusive=False):
            document, _ = self._signatures()
            if document is None or document != self._seen[0]:
                return None
            try:
                with self.journal.open("rb") as fh:
                    fh.seek(self.journal_bytes)
                    data = fh.read()
            except FileNotFoundError:
                return None
            end = data.rfind(b"\n") + 1  # an unfinished last line is left for its writer to finish or cut
            ops: list[list[Any]] = []
            for n, line in enumerate(data[:end].split(b"\n")[:-1], 1):
                try:
                    entry = json.loads(line.decode("utf-8"))
                    if not isinstance(entry, dict) or type(entry.get("ops")) is not list:
                        raise ValueError("not a journal entry {base, ops}")
                    if entry.get("base") != self.generation:
                        return None
                    ops.extend(check_op(op) for op in entry["ops"])
                except (UnicodeDecodeError, ValueError) as exc:
                    at = f"after byte {self.journal_bytes} ({n})"
                    raise StoreError(f"{self.journal}: corrupt line {at}: {exc}") from exc
            self.journal_bytes += end
            self._seen = self._signatures()
            return ops

    def check_fresh(self) -> None:
        """Refuse to write over what another process or store wrote since this one read."""
        if self._signatures() != self._seen:
            raise StoreError(
                f"{self.document} (or its journal) was written by another process or store since this one "
                "read it; reopen the store and repeat the write (refusing to overwrite the newer graph)"
            )

    def record(self, op: str, rows: list[Any]) -> None:
        """Keep an applied operation for the next flush's journal line (copied: callers may
        reuse their dicts); a bulk write switches that flush to compaction instead."""
        if self._compact or not rows:
            return
        self._pending_rows += len(rows)
        if self._pending_rows > BULK_ROWS:
            self.compact_next()
            return
        if op in TABLE_NAMES:
            rows = [[dict(v) if type(v) is dict else v for v in row] for row in rows]
        self._pending.append([op, rows])

    def mark(self) -> tuple[int, int, bool]:
        """Where the pending operations stand now, for ``reset_to`` if a write fails."""
        return len(self._pending), self._pending_rows, self._compact

    def reset_to(self, mark: tuple[int, int, bool]) -> None:
        """Forget the operations recorded since ``mark`` (their write was rolled back)."""
        count, rows, compact = mark
        del self._pending[count:]
        self._pending_rows, self._compact = rows, compact

    def discard_pending(self) -> None:
        """Forget every recorded operation (a failed flush: the graph is reread from the files)."""
        self._pending, self._pending_rows, self._compact = [], 0, False

    def compact_next(self) -> None:
        """Make the next flush rewrite the document (bulk loads, ``clear``, ``compact()``)."""
        self._compact = True
        self._pending, self._pending_rows = [], 0

    def flush(self, tables: Callable[[], Tables]) -> None:
        """Append what was recorded, or compact with ``tables()`` when asked to, when there is no
        document yet, or once the journal passed ``journal_limit``."""
        with self._locked(exclusive=True):
            self.check_fresh()
            if self._compact or self.journal_bytes > self.journal_limit or not self.document.exists():
                self.rewrite(tables())
            elif self._pending:
                self.append(self._pending)
        self._pending, self._pending_rows = [], 0
        self._compact = False

    def append(self, ops: list[list[Any]]) -> None:
        """Append one flush as one line and fsync it; an unfinished or stale tail is cut off first."""
        line = json.dumps(
            {"base": self.generation, "ops": ops}, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8") + b"\n"
        created = not self.journal.exists()
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, self.journal_bytes)
            os.lseek(fd, self.journal_bytes, os.SEEK_SET)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.directory)
        self.journal_bytes += len(line)
        self._seen = self._signatures()

    def rewrite(self, tables: Tables) -> None:
        """Compact: the whole graph as a new document under a new generation, then no journal."""
        generation = secrets.token_hex(8)
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "generation": generation, **tables}
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                    gz.write(_document_bytes(doc))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, self.document)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.generation = generation
        # From here the journal's base is stale, so a crash before the unlink loses nothing.
        self.journal.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self.journal_bytes = 0
        self._seen = self._signatures()
