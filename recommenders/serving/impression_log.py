"""Logging what was served, without slowing or failing a request.

``impressions(decision, ...)`` turns a served list (``Server.decide``) into one
``graph.impressions.Impression`` per item: user, item, position, policy, model and source, the
slot's propensity, the request id and time, and — on position 1 — the candidate pool and its
logits. ``ImpressionLogger.submit`` only appends them to a bounded in-process buffer; a
background thread writes the buffer to the store in batches (every ``interval`` seconds or
``batch`` rows). When the buffer is full, or the store refuses a batch, the impressions are
dropped and counted (``on_count``: the API's ``kgrec_impressions_total`` in ``/metrics``), never
raised into a request. The thread is started in the process that first submits (a gunicorn
worker, never the master), and the buffer is flushed when the process exits.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from kgrec.graph.impression_rows import check_impressions
from kgrec.graph.impressions import Impression, as_impression_store, impression_id
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError
from kgrec.recommenders.serving.policies import Decision

log = logging.getLogger("kgrec.impressions")
#: Runs a function against the store as a write (the API's ``StoreHandle.call(fn, write=True)``).
WriteCall = Callable[[Callable[[GraphStore], Any]], Any]
#: Outcomes counted: written to the store, dropped because the buffer was full, lost because the
#: store refused or could not be reached.
COUNTED = ("logged", "dropped", "failed")
#: Held while a process starts its writer thread (two first requests at once start one).
_STARTING = threading.Lock()


def new_request_id() -> str:
    """A fresh id for one served list (32 hex digits)."""
    return uuid.uuid4().hex


def seed_of(request: str) -> int:
    """The exploring policy's random seed for a request: its id decides its draw (replayable)."""
    return int.from_bytes(hashlib.sha256(request.encode()).digest()[:8], "big")


def impressions(decision: Decision, request: str, user: str, model: str, at: float | None = None,
                pool: int = 100) -> list[Impression]:
    """One impression per served item; the first carries the pool (at most ``pool`` items)."""
    at = time.time() if at is None else at
    spec = decision.spec
    out = []
    for s in decision.served:
        first = s.rank == 1
        out.append(Impression(
            impression_id(request, s.rank), request, user, s.item, s.rank, at, spec.name, model, s.source,
            float(s.propensity if s.propensity is not None else 1.0), _finite(s.score), s.explored, spec.eps,
            spec.tau, spec.protect if spec.explores else 0,
            decision.pool[:pool] if first else None,
            tuple(_finite(x) for x in decision.pool_logits[:pool]) if first else None,
        ))
    return out


def _finite(x: float) -> float:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else 0.0


class ImpressionLogger:
    """A bounded buffer of impressions written by a background thread in batches."""

    def __init__(self, write: WriteCall, capacity: int = 50_000, batch: int = 5_000, interval: float = 0.25,
                 on_count: Callable[[str, int], None] | None = None) -> None:
        self._write = write
        self.capacity, self.batch, self.interval = capacity, batch, interval
        self.on_count = on_count
        self.counts = dict.fromkeys(COUNTED, 0)
        self._pid: int | None = None
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        """Fresh buffer, lock and thread state (also in a forked child: nothing crosses a fork)."""
        self._buffer: deque[Impression] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # submitted and not yet written or lost
        self._thread: threading.Thread | None = None

    def _count(self, outcome: str, n: int) -> None:
        if n <= 0:
            return
        with self._cond:
            self.counts[outcome] += n
        if self.on_count is not None:
            try:
                self.on_count(outcome, n)
            except Exception:  # metrics must never break logging
                log.debug("impression counter failed", exc_info=True)

    def _ensure_thread(self) -> None:
        with _STARTING:
            self._start()

    def _start(self) -> None:
        if self._pid != os.getpid():
            self._reset()
            self._pid = os.getpid()
            atexit.register(self.close)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kgrec-impressions", daemon=True)
            self._thread.start()
            if self.on_count is not None:
                for outcome in COUNTED:  # every outcome's series exists from this process's first list
                    self.on_count(outcome, 0)

    def submit(self, rows: Sequence[Impression]) -> bool:
        """Queue a served list's impressions; never blocks. False (and counted as dropped) when
        the buffer cannot take them whole."""
        if not rows:
            return True
        if self._pid != os.getpid() or self._thread is None:
            self._ensure_thread()
        with self._cond:
            if self._closed or len(self._buffer) + len(rows) > self.capacity:
                dropped = True
            else:
                dropped = False
                self._buffer.extend(rows)
                self._pending += len(rows)
                if len(self._buffer) >= self.batch:
                    self._cond.notify()
        if dropped:
            self._count("dropped", len(rows))
        return not dropped

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._buffer and not self._closed:
                    self._cond.wait(self.interval)
                if not self._buffer:
                    if self._closed:
                        return
                    continue
                rows = [self._buffer.popleft() for _ in range(min(self.batch, len(self._buffer)))]
            self._write_batch(rows)

    def _write_batch(self, rows: list[Impression]) -> None:
        try:
            check_impressions(rows)  # here, not under the store's lock: requests wait on that lock
            self._write(lambda store: as_impression_store(store).log_impressions(rows, checked=True))
            outcome = "logged"
        except (StoreError, OSError) as exc:
            log.warning("lost %d impressions: the store refused them (%s)", len(rows), exc)
            outcome = "failed"
        except Exception:
            log.exception("lost %d impressions", len(rows))
            outcome = "failed"
        self._count(outcome, len(rows))
        with self._cond:
            self._pending -= len(rows)
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (or lost); False on timeout."""
        if self._pid != os.getpid() or self._thread is None:
            return True
        end = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._pending > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, self.interval))
                self._cond.notify_all()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered (up to ``timeout`` seconds), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
