"""A Neo4j 5 database spoken to over Bolt: the driver, its transactions and its errors.

The part of ``Neo4jStore`` that knows nothing of the graph model: opening a driver from a URL
(credentials only from the environment), running reads as read transactions (so a caller's
query can never write) and writes as managed, retried ones, and turning every driver failure
into the store's own errors. Everything returned is plain data.

**Slow is not down.** Every transaction runs under a time allowed: the caller's (``deadline``:
the API sets one per request, ``/v1/cypher`` the query's own) or ``DEFAULT_TIMEOUT`` (commands,
loads). The server enforces it as the transaction's timeout, and the driver waits for an
answer that long (plus ``GRACE``) instead of the server's keep-alive hint (two keep-alive
periods: 2 s on the local server, so a garbage-collection pause or a deep parse used to read as
an outage). So the errors mean what they say:

* ``StoreTimeout`` (a ``StoreUnavailable``: a reader may serve what it has): the time allowed ran
  out, at the server (transaction timed out) or here (no answer by then): the API's 504;
* ``StoreUnavailable``: no connection, a broken one, or the database going away (a query killed
  by a shutdown is ``DatabaseUnavailable``): the API's 503;
* ``StoreError``: the server refused the query itself (syntax, a constraint, a write in a read
  transaction): the caller's fault, not an outage.

Writes are managed transactions the driver retries on transient errors (deadlocks, a leader
switch, a restart) for ``RETRY_BUDGET`` seconds, or up to ``LOAD_RETRY_BUDGET`` without a
deadline (loads): every kgrec write MERGEs on keys, so a retried batch writes nothing twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlsplit

from kgrec.graph.store_errors import StoreError, StoreTimeout, StoreUnavailable

#: Seconds to connect (TCP and Bolt handshake) and to retry a failed transaction within a deadline.
CONNECT_TIMEOUT, RETRY_BUDGET = 2.0, 2.0
#: Seconds of retries for work without a deadline (``kgrec load`` waits out a restarting server).
LOAD_RETRY_BUDGET = 30.0
#: Seconds a transaction may run when its caller set no deadline (``KGREC_NEO4J_TIMEOUT``).
DEFAULT_TIMEOUT = float(os.environ.get("KGREC_NEO4J_TIMEOUT") or 300.0)
#: Seconds the driver waits beyond a transaction's timeout for the server's own answer to it.
GRACE = 0.5
#: Server codes of a transaction that ran past its timeout.
TIMED_OUT = frozenset({"Neo.ClientError.Transaction.TransactionTimedOut",
                       "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration"})
#: Client codes that mean the database, not the query, failed (terminated by an administrator or a
#: shutdown, a lock client stopped with it).
GONE = frozenset({"Neo.ClientError.Transaction.Terminated", "Neo.ClientError.Transaction.LockClientStopped"})

T = TypeVar("T")
_DEADLINE: ContextVar[float | None] = ContextVar("kgrec_neo4j_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every transaction started inside the block (in this thread or task) ends within
    ``seconds`` from now: each gets what is left as its timeout; none starts once it is spent."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _time_left() -> tuple[float, float | None]:
    """(seconds the next transaction may take, the absolute deadline or None)."""
    end = _DEADLINE.get()
    if end is None:
        return DEFAULT_TIMEOUT, None
    return end - time.monotonic(), end


class Neo4jConnection:
    """One driver for as long as the object lives; a session per call, so it is thread-safe."""

    def __init__(self, uri: str, auth: tuple[str, str] | None = None, database: str | None = None) -> None:
        import neo4j

        self._neo4j = neo4j
        self.uri = uri
        self.database = database
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri,
                auth=auth,
                # A dead or frozen server must become a 503 in seconds: connecting, and the Bolt
                # handshake of a new connection (bounded by the acquisition timeout), give up
                # after 2 s; reads on an open connection end at the server's keep-alive hint
                # (connection.recv_timeout_seconds, twice server.bolt.connection_keep_alive).
                connection_timeout=CONNECT_TIMEOUT,
                connection_acquisition_timeout=CONNECT_TIMEOUT,
                # Retries cover deadlocks and restarts, within this budget.
                max_transaction_retry_time=RETRY_BUDGET,
                notifications_min_severity="OFF",
            )
        except (ValueError, neo4j.exceptions.ConfigurationError) as exc:
            raise StoreError(f"bad Neo4j URL {uri!r}: {exc}") from exc
        try:
            self._call(self._driver.verify_connectivity)
            self._prepare()
        except BaseException:
            self._driver.close()
            raise

    def _prepare(self) -> None:
        """Run once connected, before the object is handed out; a failure closes the driver."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """``neo4j://HOST:PORT[/DATABASE]`` (or bolt://, +s variants); credentials come only from
        ``KGREC_NEO4J_USER`` / ``KGREC_NEO4J_PASSWORD`` (no auth when both are unset)."""
        parts = urlsplit(url)
        if parts.scheme not in ("neo4j", "bolt", "neo4j+s", "bolt+s", "neo4j+ssc", "bolt+ssc"):
            raise StoreError(f"unsupported Neo4j URL scheme in {url!r}: use neo4j://HOST:PORT[/DATABASE]")
        if parts.username or parts.password:
            raise StoreError("credentials never go in the store URL: set KGREC_NEO4J_USER / KGREC_NEO4J_PASSWORD")
        if not parts.hostname:
            raise StoreError(f"no host in Neo4j URL {url!r}")
        if parts.query or parts.fragment:
            raise StoreError(f"Neo4j URL {url!r} takes no query or fragment")
        try:
            port = parts.port
        except ValueError as exc:
            raise StoreError(f"bad port in Neo4j URL {url!r}") from exc
        path = unquote(parts.path.strip("/"))
        if "/" in path:
            raise StoreError(f"Neo4j URL {url!r}: the path is one database name")
        user = os.environ.get("KGREC_NEO4J_USER")
        password = os.environ.get("KGREC_NEO4J_PASSWORD")
        auth = None if user is None and password is None else (user or "neo4j", password or "")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        address = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
        return cls(address, auth=auth, database=path or None)

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a driver call, turning driver failures into the store's own errors (see the
        module docstring): a timeout, an outage, or a query the server refused."""
        exc_mod = self._neo4j.exceptions
        allowed, end = _time_left()
        try:
            return fn(*args, **kwargs)
        except (exc_mod.ServiceUnavailable, exc_mod.SessionExpired, exc_mod.ConnectionPoolError) as exc:
            if end is not None and time.monotonic() >= end:  # we stopped waiting: the time ran out
                raise StoreTimeout(f"Neo4j at {self.uri} did not answer in time: {exc}", allowed) from exc
            raise StoreUnavailable(f"Neo4j at {self.uri} is unavailable: {exc}") from exc
        except exc_mod.AuthError as exc:
            raise StoreError(
                f"Neo4j at {self.uri} refused the credentials (KGREC_NEO4J_USER / KGREC_NEO4J_PASSWORD): {exc}"
            ) from exc
        except exc_mod.Neo4jError as exc:
            code = exc.code or ""
            if code in TIMED_OUT:
                raise StoreTimeout(f"the query ran past its {allowed:g} s timeout and was stopped", allowed) from exc
            if code in GONE or isinstance(exc, exc_mod.TransientError | exc_mod.DatabaseError):
                raise StoreUnavailable(f"Neo4j at {self.uri} is unavailable: {exc.message or exc}") from exc
            raise StoreError(f"Neo4j refused the query: {exc.message or exc}") from exc
        except exc_mod.DriverError as exc:
            raise StoreError(f"Neo4j driver error talking to {self.uri}: {exc}") from exc

    def _session(self, write: bool, **config: Any) -> Any:
        mode = self._neo4j.WRITE_ACCESS if write else self._neo4j.READ_ACCESS
        return self._driver.session(database=self.database, default_access_mode=mode, **config)

    def _managed(self, work: Callable[[Any], T], write: bool) -> T:
        """``work`` in a managed transaction (retried by the driver on transient errors) under
        the time allowed: the server's transaction timeout, and the driver's wait for answers."""
        allowed, end = _time_left()
        if allowed <= 0:
            raise StoreTimeout("no time was left for the store", 0.0)

        def timed(tx: Any) -> T:
            left = allowed if end is None else end - time.monotonic()
            if left <= 0:  # a retry after the deadline: do not start it
                raise StoreTimeout(f"the store did not answer within {allowed:g} s", allowed)
            _wait_for_answers(tx, left + GRACE)
            return work(tx)

        def go() -> T:
            budget = LOAD_RETRY_BUDGET if end is None else min(RETRY_BUDGET, max(allowed, 0.0))
            with self._session(write, max_transaction_retry_time=budget) as session:
                run = session.execute_write if write else session.execute_read
                return run(self._neo4j.unit_of_work(timeout=allowed)(timed))

        return self._call(go)

    def _read(self, work: Callable[[Any], T]) -> T:
        return self._managed(work, write=False)

    def _write(self, work: Callable[[Any], T]) -> T:
        return self._managed(work, write=True)

    @contextmanager
    def _transaction(self, fetch_size: int = 1000) -> Iterator[tuple[Any, float]]:
        """An explicit (never retried) read transaction under the time allowed, yielded with
        that time: the server's timeout, and a hard deadline for every answer the driver waits
        for, so the caller's wall time stays within it plus ``GRACE``. Leaving the block rolls
        the transaction back, which stops the query at the server."""
        allowed, end = _time_left()
        if allowed <= 0:
            raise StoreTimeout("no time was left for the store", 0.0)
        session = self._session(write=False, fetch_size=fetch_size)
        try:
            tx = self._call(session.begin_transaction, timeout=allowed)
            socket = _socket(tx)
            hint = socket.get_read_timeout() if socket is not None else None
            try:
                if socket is not None:  # not the keep-alive hint: one deadline for every answer
                    socket.set_read_timeout(None)
                    socket.set_read_deadline(max(allowed if end is None else end - time.monotonic(), 0.0) + GRACE)
                yield tx, allowed
            finally:
                if socket is not None:  # the rollback gets a moment of its own
                    socket.set_read_deadline(GRACE)
                with suppress(Exception):  # a dead connection cannot roll back; the server drops it
                    tx.close()
                if socket is not None:  # the connection goes back to the pool as it came
                    socket.set_read_deadline(None)
                    socket.set_read_timeout(hint)
        finally:
            with suppress(Exception):
                session.close()

    def run_read(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a parameterised read-only query (a write is refused by the server) as plain dicts.

        ``timeout`` (seconds) is a transaction timeout the server enforces.
        """

        def work(tx: Any) -> list[dict[str, Any]]:
            return tx.run(query, params or {}).data()

        if timeout is None:
            return self._read(work)
        with deadline(min(timeout, _time_left()[0])):
            return self._read(work)

    @contextmanager
    def read_stream(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None, fetch_size: int = 1000
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """Rows of a read-only query as plain dicts, pulled ``fetch_size`` at a time while the
        caller iterates. Leaving the block rolls the transaction back, which stops the query at
        the server: a caller that wants 10 rows of a billion reads 10 (and the batch they came in).
        Not retried (a stream cannot be replayed); ``timeout`` (or the caller's deadline, whichever
        ends first) bounds it, at the server and in the driver."""
        with deadline(min(timeout, _time_left()[0]) if timeout else _time_left()[0]), \
                self._transaction(fetch_size) as (tx, _):
            yield self._records(self._call(tx.run, query, params or {}))

    def _records(self, result: Any) -> Iterator[dict[str, Any]]:
        it = iter(result)
        while (record := self._call(next, it, None)) is not None:
            yield record.data()

    def plan(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The server's plan of ``query`` (``EXPLAIN``: planned, never run), as plain dicts;
        planning runs under the time allowed (the caller's deadline), like the query itself."""
        explain = "EXPLAIN\n" + query  # the analyst's own text, prefixed; values stay parameters
        with self._transaction() as (tx, _):
            summary = self._call(lambda: tx.run(explain, params or {}).consume())
        return dict(summary.plan or {})

    def run_write(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a parameterised query in a managed (retried) write transaction, as plain dicts."""
        return self._write(lambda tx: tx.run(query, params or {}).data())

    def close(self) -> None:
        self._driver.close()

    def ping(self) -> bool:
        """One connection attempt, without the transaction retries (health checks must be quick)."""
        try:
            self._call(self._driver.verify_connectivity)
        except StoreUnavailable:
            return False
        return True


def _socket(tx: Any) -> Any:
    """The Bolt socket under a driver transaction (the driver has no public hook for its receive
    timeout); None if a driver version hides it, and then the server's hint stands."""
    socket = getattr(getattr(tx, "_connection", None), "socket", None)
    return socket if hasattr(socket, "set_read_timeout") and hasattr(socket, "set_read_deadline") else None


def _wait_for_answers(tx: Any, seconds: float) -> None:
    """Let the driver wait up to ``seconds`` between answers on ``tx``'s connection (the next
    transaction on it sets its own)."""
    socket = _socket(tx)
    if socket is not None:
        socket.set_read_timeout(seconds)
