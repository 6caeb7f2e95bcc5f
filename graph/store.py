"""The GraphStore interface, and the plain values it returns (``Neighbor``, ``Feedback``).

Each backend is its own class (``MemoryStore``, ``Neo4jStore``); shared code talks to this
interface only and never asks which backend it holds. Errors are in ``graph.store_errors``,
opening a store by URL in ``graph.store_factory``.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from kgrec.graph.bulk import check_records
from kgrec.graph.records import Dislike, Fact, Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.graph.schema import COUNT_KEYS, Label, Rel
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.graph.store_errors import StoreError, StoreUnavailable

#: How a whole graph is written (``GraphStore.write_graph``): ``merge`` upserts into any store,
#: ``create`` writes into an empty store only, by the store's fastest path, ``auto`` picks.
LOAD_MODES = ("auto", "create", "merge")
#: Records per upsert call of a bulk write.
WRITE_BATCH = 10_000


@dataclass(frozen=True)
class Neighbor:
    """One relationship next to a node, as plain data (never a live driver object)."""

    rel: Rel
    outgoing: bool
    label: Label
    id: str
    name: str | None
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Feedback:
    """What the store holds now about one user's feedback, and which items are hidden.

    Tokens change whenever the part they guard changes; a part is ``None`` when the caller's
    token was still current (nothing to ship), so a server that caches per user pays one small
    read per request. ``interacted`` is the user's whole INTERACTED history (item -> weight),
    ``disliked`` the items they DISLIKED; ``known`` says whether the user node exists.
    """

    user_token: Hashable
    known: bool
    interacted: dict[str, float] | None
    disliked: frozenset[str] | None
    hidden_token: Hashable
    hidden: frozenset[str] | None


#: The stored property that names a node in ``Neighbor.name`` (users: their ``name`` attribute).
DISPLAY_PROPERTY: dict[Label, str] = {
    Label.USER: "attr_name",
    Label.ITEM: "title",
    Label.TAG: "name",
    Label.ENTITY: "label",
}


def neighbor_order(n: Neighbor) -> tuple[str, str, bool, str]:
    """The order of ``GraphStore.neighbors``: (rel, id), then direction and properties, so
    parallel relationships (one TAGGED per tag) come out the same from every store."""
    return (n.rel.value, n.id, not n.outgoing, json.dumps(n.props, sort_keys=True, default=str))


@runtime_checkable
class RunsCypher(Protocol):
    """A store that runs an analyst's read-only Cypher (Neo4j): the endpoint plans the query
    before running it and streams its rows."""

    def plan(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def read_stream(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None, fetch_size: int = 1000
    ) -> Any: ...


class GraphStore(ABC):
    """A user–item–tag–social property graph with batched, idempotent writes.

    Upserts are keyed (see ``graph.schema``): writing the same record twice leaves one
    node or relationship with the latest properties, so a failed load can simply be rerun.
    Writes that name a node that does not exist yet create it with only its key.
    """

    #: Whether several threads may call the store at once (a driver) or must take turns (networkx).
    thread_safe: ClassVar[bool] = False

    # -- writes -------------------------------------------------------------------------
    @abstractmethod
    def upsert_users(self, rows: Iterable[User]) -> int: ...

    @abstractmethod
    def upsert_items(self, rows: Iterable[Item]) -> int: ...

    @abstractmethod
    def upsert_tags(self, rows: Iterable[Tag]) -> int: ...

    @abstractmethod
    def upsert_interactions(self, rows: Iterable[Interaction]) -> int: ...

    @abstractmethod
    def upsert_taggings(self, rows: Iterable[Tagging]) -> int: ...

    @abstractmethod
    def upsert_item_tags(self, rows: Iterable[ItemTag]) -> int: ...

    @abstractmethod
    def upsert_follows(self, rows: Iterable[Follow]) -> int: ...

    @abstractmethod
    def upsert_facts(self, rows: Iterable[Fact]) -> int: ...

    @abstractmethod
    def upsert_dislikes(self, rows: Iterable[Dislike]) -> int:
        """Negative feedback, one DISLIKED per (user, item); independent of INTERACTED."""

    @abstractmethod
    def delete_dislikes(self, pairs: Iterable[tuple[str, str]]) -> int: ...

    @abstractmethod
    def set_hidden(self, ids: Iterable[str], hidden: bool) -> int:
        """Flag existing items as hidden (or not); returns how many of them exist. A hidden item
        keeps its relationships (it still shapes others' scores) but is never served."""

    @abstractmethod
    def delete_users(self, ids: Iterable[str]) -> int:
        """Delete users and every relationship touching them; returns how many existed."""

    @abstractmethod
    def delete_items(self, ids: Iterable[str]) -> int: ...

    @abstractmethod
    def delete_interactions(self, pairs: Iterable[tuple[str, str]]) -> int: ...

    @abstractmethod
    def clear(self) -> None:
        """Remove everything (tests, and ``kgrec load --replace``)."""

    def flush(self) -> None:  # noqa: B027 - optional hook: write-through stores need nothing
        """Make every write so far durable. Stores that write through need do nothing."""

    def refresh(self) -> None:  # noqa: B027 - optional hook: stores that read live need nothing
        """Take in what other processes wrote since this one last looked (an embedded store
        keeps a copy in memory); stores that read the database on every call need nothing."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off other writers for a read-modify-write (an embedded store locks its files and
        refreshes first; a database serialises writes itself, so the default does nothing)."""
        yield

    # -- reads --------------------------------------------------------------------------
    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Counts under the keys of ``graph.records.COUNT_KEYS``."""

    @abstractmethod
    def get_node(self, label: Label, key: str) -> dict[str, Any] | None:
        """A node's properties (attributes unprefixed under ``attrs``), or None."""

    @abstractmethod
    def neighbors(
        self, label: Label, key: str, rels: Sequence[Rel] | None = None, limit: int = 100
    ) -> list[Neighbor]:
        """Relationships next to a node, both directions, sorted by ``neighbor_order`` (rel, id, …)
        for stable output, the first ``limit`` of them; ``name`` follows ``DISPLAY_PROPERTY``."""

    @abstractmethod
    def has_relationship(self, src: tuple[Label, str], rel: Rel, dst: tuple[Label, str]) -> bool:
        """Whether ``(src)-[rel]->(dst)`` exists; explanations are checked against this."""

    @abstractmethod
    def export(self) -> GraphRecords:
        """The whole graph as records (RDF export, snapshots)."""

    @abstractmethod
    def feedback(self, user: str, user_token: Hashable = None, hidden_token: Hashable = None) -> Feedback:
        """One user's current feedback and the hidden items, shipping only the parts whose
        token changed (see ``Feedback``): what servers read on every request."""

    def snapshot(self) -> GraphSnapshot:
        """An immutable array view of the graph; the same data gives the same fingerprint."""
        return build_snapshot(self.export())

    # -- whole graphs -------------------------------------------------------------------
    def is_empty(self) -> bool:
        """True when the store holds nothing at all (what ``create`` mode needs)."""
        return not any(self.counts().values())

    def load_mode(self, mode: str = "auto") -> str:
        """The mode a whole-graph write in ``mode`` runs in: ``auto`` is ``create`` into an empty
        store and ``merge`` otherwise; ``create`` into a store holding data is refused."""
        if mode not in LOAD_MODES:
            raise StoreError(f"unknown load mode {mode!r}; expected one of {', '.join(LOAD_MODES)}")
        if mode == "merge":
            return mode
        empty = self.is_empty()
        if mode == "create" and not empty:
            raise StoreError(
                "create mode writes only into an empty store, and this one holds data; load with "
                "--mode merge (upsert into what is there) or --replace (empty it first)"
            )
        return "create" if empty else "merge"

    def write_graph(
        self,
        records: GraphRecords,
        mode: str = "merge",
        *,
        batch: int = WRITE_BATCH,
        progress: Callable[[int], object] | None = None,
        timings: dict[str, float] | None = None,
    ) -> dict[str, int]:
        """Write a whole graph (nodes before the relationships that name them) in ``mode`` (see
        ``load_mode``) and flush; returns the records written per ``COUNT_KEYS`` kind.
        ``progress(n)`` is called as records are written; ``timings`` receives the seconds
        spent per kind and on the flush. Every mode ends with the graph the upserts give."""
        create = self.load_mode(mode) == "create"
        timings = {} if timings is None else timings
        written = self._write_whole(records, create, batch, progress or _ignore, timings)
        started = time.perf_counter()
        self.flush()
        timings["flush"] = timings.get("flush", 0.0) + time.perf_counter() - started
        return written

    def _write_whole(
        self, records: GraphRecords, create: bool, batch: int, progress: Callable[[int], object],
        timings: dict[str, float],
    ) -> dict[str, int]:
        """Check every row (a bad one writes nothing), then upsert each kind in batches of
        ``batch``; stores with a faster path for whole graphs (or for ``create`` into an empty
        store) override this."""
        check_records(records)
        writers: dict[str, Callable[[Sequence[Any]], int]] = {
            "users": self.upsert_users,
            "items": self.upsert_items,
            "tags": self.upsert_tags,
            "interactions": self.upsert_interactions,
            "taggings": self.upsert_taggings,
            "item_tags": self.upsert_item_tags,
            "follows": self.upsert_follows,
            "facts": self.upsert_facts,
            "dislikes": self.upsert_dislikes,
        }
        written = dict.fromkeys(COUNT_KEYS, 0)
        for kind in COUNT_KEYS:
            rows = getattr(records, kind)
            started = time.perf_counter()
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                writers[kind](chunk)
                written[kind] += len(chunk)
                progress(len(chunk))
            timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - started
        if records.hidden:
            self.set_hidden(records.hidden, True)
        return written

    def load(self, records: GraphRecords) -> dict[str, int]:
        """Upsert a whole ``GraphRecords`` (``write_graph`` in merge mode), then flush."""
        return self.write_graph(records, "merge")

    def ping(self) -> bool:
        """True when the store answers (health checks)."""
        try:
            self.counts()
        except StoreUnavailable:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional hook: stores without resources need nothing
        """Release connections; the store is unusable afterwards."""

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ignore(n: int) -> None:
    """A progress callback that shows nothing."""
