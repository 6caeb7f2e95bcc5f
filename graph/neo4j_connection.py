"""A Neo4j 5 database spoken to over Bolt: the driver, its transactions and its errors.

The part of ``Neo4jStore`` that knows nothing of the graph model: opening a driver from a URL
(credentials only from the environment), running reads as read transactions (so a caller's
query can never write) and writes as managed, retried ones, and turning every driver failure
into the store's own ``StoreError`` / ``StoreUnavailable``. Everything returned is plain data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlsplit

from kgrec.graph.store_errors import StoreError, StoreUnavailable

#: Seconds to connect (TCP and Bolt handshake) and to retry a failed transaction.
CONNECT_TIMEOUT, RETRY_BUDGET = 2.0, 2.0

T = TypeVar("T")


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
        """Run a driver call, turning driver failures into the store's own errors."""
        exc_mod = self._neo4j.exceptions
        try:
            return fn(*args, **kwargs)
        except (exc_mod.ServiceUnavailable, exc_mod.SessionExpired) as exc:
            raise StoreUnavailable(f"Neo4j at {self.uri} is unavailable: {exc}") from exc
        except exc_mod.AuthError as exc:
            raise StoreError(
                f"Neo4j at {self.uri} refused the credentials (KGREC_NEO4J_USER / KGREC_NEO4J_PASSWORD): {exc}"
            ) from exc
        except exc_mod.Neo4jError as exc:
            raise StoreError(f"Neo4j refused the query: {exc.message or exc}") from exc
        except exc_mod.DriverError as exc:
            raise StoreError(f"Neo4j driver error talking to {self.uri}: {exc}") from exc

    def _session(self, write: bool) -> Any:
        mode = self._neo4j.WRITE_ACCESS if write else self._neo4j.READ_ACCESS
        return self._driver.session(database=self.database, default_access_mode=mode)

    def _read(self, work: Callable[[Any], T]) -> T:
        def go() -> T:
            with self._session(write=False) as session:
                return session.execute_read(work)

        return self._call(go)

    def _write(self, work: Callable[[Any], T]) -> T:
        def go() -> T:
            with self._session(write=True) as session:
                return session.execute_write(work)

        return self._call(go)

    def run_read(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a parameterised read-only query (a write is refused by the server) as plain dicts.

        ``timeout`` (seconds) is a transaction timeout the server enforces.
        """

        def work(tx: Any) -> list[dict[str, Any]]:
            return tx.run(query, params or {}).data()

        return self._read(self._neo4j.unit_of_work(timeout=timeout)(work) if timeout else work)

    @contextmanager
    def read_stream(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None, fetch_size: int = 1000
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """Rows of a read-only query as plain dicts, pulled ``fetch_size`` at a time while the
        caller iterates. Leaving the block rolls the transaction back, which stops the query at
        the server: a caller that wants 10 rows of a billion reads 10 (and the batch they came in).
        Not retried (a stream cannot be replayed); ``timeout`` is enforced by the server."""
        session = self._driver.session(database=self.database, default_access_mode=self._neo4j.READ_ACCESS,
                                       fetch_size=fetch_size)
        try:
            tx = self._call(session.begin_transaction, timeout=timeout)
            try:
                yield self._records(self._call(tx.run, query, params or {}))
            finally:
                with suppress(Exception):  # a dead connection cannot roll back; the server drops it
                    tx.close()
        finally:
            with suppress(Exception):
                session.close()

    def _records(self, result: Any) -> Iterator[dict[str, Any]]:
        it = iter(result)
        while (record := self._call(next, it, None)) is not None:
            yield record.data()

    def plan(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The server's plan of ``query`` (``EXPLAIN``: planned, never run), as plain dicts."""
        explain = "EXPLAIN\n" + query  # the analyst's own text, prefixed; values stay parameters
        summary = self._read(lambda tx: tx.run(explain, params or {}).consume())
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
