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
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from kgrec.graph import records as rec
from kgrec.graph.bulk import CheckedRecords, check_records, paused_gc
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import COUNT_KEYS, Label, Rel
from kgrec.graph.store_errors import StoreError, StoreUnavailable
from kgrec.graph.user_attributes import profile_records, rules_from_attributes

if TYPE_CHECKING:  # imported when a snapshot is built: scipy is most of a load command's start-up
    from kgrec.graph.snapshot import GraphSnapshot

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
    ``disliked`` the items they DISLIKED, ``attributes`` the ids of the Attribute nodes they
    link to (HAS_ATTRIBUTE; shipped with the history, under the same token); ``known`` says
    whether the user node exists.
    """

    user_token: Hashable
    known: bool
    interacted: dict[str, float] | None
    disliked: frozenset[str] | None
    hidden_token: Hashable
    hidden: frozenset[str] | None
    attributes: frozenset[str] | None = None
    #: The user's impressions (``graph.impressions``) under their own token, so that a list just
    #: logged re-ships only them, not the history: item -> times shown, and item -> times shown and
    #: not chosen (no feedback named the impression); None when ``impressions_token`` was current.
    shown: dict[str, int] | None = None
    skipped: dict[str, int] | None = None
    impressions_token: Hashable = None


#: The stored property that names a node in ``Neighbor.name`` (users: their ``name`` attribute).
DISPLAY_PROPERTY: dict[Label, str] = {
    Label.USER: "attr_name",
    Label.ITEM: "title",
    Label.TAG: "name",
    Label.ENTITY: "label",
    Label.ATTRIBUTE: "name",
    Label.IMPRESSION: "name",  # impressions have no name: None in every store
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
    def upsert_users(self, rows: Iterable[rec.User]) -> int:
        """Users with their attributes, replaced whole; their HAS_ATTRIBUTE links are dropped with
        the old attributes (write the new ones after, or use ``upsert_profiles``)."""

    @abstractmethod
    def upsert_items(self, rows: Iterable[rec.Item]) -> int: ...

    @abstractmethod
    def upsert_tags(self, rows: Iterable[rec.Tag]) -> int: ...

    @abstractmethod
    def upsert_attributes(self, rows: Iterable[rec.Attribute]) -> int:
        """Attribute nodes; a missing kind, value or name keeps the one already stored."""

    @abstractmethod
    def upsert_user_attributes(self, rows: Iterable[rec.UserAttribute]) -> int:
        """HAS_ATTRIBUTE links, one per (user, attribute); the users' feedback tokens move."""

    def upsert_profiles(self, users: Iterable[rec.User]) -> int:
        """Users with their attributes and the Attribute links those give under the rules the
        store's Attribute nodes imply (``graph.user_attributes``: what ``POST /v1/users`` writes),
        replacing their old links, in one write; returns the distinct users written."""
        rows = list(users)
        attributes, links = profile_records(rows, rules_from_attributes(self.attributes()))
        return self._write_profiles(rows, attributes, links)

    def _write_profiles(self, users: list[rec.User], attributes: list[rec.Attribute],
                        links: list[rec.UserAttribute]) -> int:
        """Users, then Attribute nodes, then links; stores that can do it in one transaction do."""
        written = self.upsert_users(users)
        self.upsert_attributes(attributes)
        self.upsert_user_attributes(links)
        return written

    @abstractmethod
    def upsert_interactions(self, rows: Iterable[rec.Interaction]) -> int: ...

    @abstractmethod
    def upsert_taggings(self, rows: Iterable[rec.Tagging]) -> int: ...

    @abstractmethod
    def upsert_item_tags(self, rows: Iterable[rec.ItemTag]) -> int: ...

    @abstractmethod
    def upsert_follows(self, rows: Iterable[rec.Follow]) -> int: ...

    @abstractmethod
    def upsert_facts(self, rows: Iterable[rec.Fact]) -> int: ...

    @abstractmethod
    def upsert_dislikes(self, rows: Iterable[rec.Dislike]) -> int:
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
    def attributes(self) -> list[rec.Attribute]:
        """Every Attribute node, sorted by id (kind, value and name filled in from the id where absent)."""

    @abstractmethod
    def items_within(self, lat: float, lon: float, radius_km: float) -> list[tuple[str, float]]:
        """(item id, great-circle km) of every item located within ``radius_km`` of (lat, lon),
        nearest first, ties by id; distances by ``graph.geo`` (haversine, R = 6371.0088 km), the
        same in every store. Hidden items are included (this is a graph query, not serving)."""

    @abstractmethod
    def export(self) -> GraphRecords:
        """The whole graph as records (RDF export, snapshots)."""

    @abstractmethod
    def feedback(self, user: str, user_token: Hashable = None, hidden_token: Hashable = None,
                 impressions_token: Hashable = None) -> Feedback:
        """One user's current feedback, impressions and the hidden items, shipping only the parts
        whose token changed (see ``Feedback``): what servers read on every request."""

    def snapshot(self) -> GraphSnapshot:
        """An immutable array view of the graph; the same data gives the same fingerprint."""
        from kgrec.graph.snapshot import build_snapshot

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
        records: GraphRecords | CheckedRecords,
        mode: str = "merge",
        *,
        batch: int = WRITE_BATCH,
        progress: Callable[[int], object] | None = None,
        timings: dict[str, float] | None = None,
    ) -> dict[str, int]:
        """Write a whole graph (nodes before the relationships that name them) in ``mode`` (see
        ``load_mode``) and flush; returns the records written per ``COUNT_KEYS`` kind.
        ``progress(n)`` is called as records are written; ``timings`` receives the seconds
        spent per kind and on the flush. Every mode ends with the graph the upserts give.
        ``records`` are checked first, once, column-wise (a bad row writes nothing, ``StoreError``);
        ``CheckedRecords`` (``graph.bulk.check_records``) are written as they are."""
        create = self.load_mode(mode) == "create"
        timings = {} if timings is None else timings
        with paused_gc():
            checked = records if isinstance(records, CheckedRecords) else check_records(records)
            written = self._write_whole(checked, create, batch, progress or _ignore, timings)
            started = time.perf_counter()
            self.flush()
        timings["flush"] = timings.get("flush", 0.0) + time.perf_counter() - started
        return written

    def _write_whole(
        self, checked: CheckedRecords, create: bool, batch: int, progress: Callable[[int], object],
        timings: dict[str, float],
    ) -> dict[str, int]:
        """Upsert each kind of the checked graph's records in batches of ``batch`` (each upsert
        checks its batch again); both stores override this with a path that writes the checked
        rows as they are."""
        records = checked.records
        written = dict.fromkeys(COUNT_KEYS, 0)
        for kind in COUNT_KEYS:
            rows = getattr(records, kind)
            started = time.perf_counter()
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                self.upsert(kind, chunk)
                written[kind] += len(chunk)
                progress(len(chunk))
            timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - started
        if records.hidden:
            self.set_hidden(records.hidden, True)
        return written

    def upsert(self, kind: str, rows: Sequence[Any]) -> int:
        """Upsert records of one ``COUNT_KEYS`` kind: ``upsert_<kind>``, and for the ``has_attribute``
        links ``upsert_user_attributes``."""
        method = "upsert_user_attributes" if kind == "has_attribute" else f"upsert_{kind}"
        if kind not in COUNT_KEYS:
            raise StoreError(f"unknown record kind {kind!r}; expected one of {', '.join(COUNT_KEYS)}")
        writer: Callable[[Sequence[Any]], int] = getattr(self, method)
        return writer(rows)

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
