"""Neo4jStore: the production store, a Neo4j 5 database spoken to over Bolt.

The driver, its transactions and its errors are ``graph.neo4j_connection``'s; this module maps
the graph model onto them. Writes are ``UNWIND $rows`` batches inside managed write
transactions (the driver retries transient failures, and MERGE on keys makes a retried batch
harmless); whole-graph loads go through ``graph.neo4j_bulk``. Every statement is a constant in
``graph.neo4j_cypher`` (where a label or type varies, picked from a dict keyed by the
``graph.schema`` enum), and every batch is checked whole by ``graph.rows`` before any of it is
sent. Everything returned is plain Python data.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar, cast

from kgrec.graph.bulk import CheckedRecords, resolve
from kgrec.graph.neo4j_attributes_places import Neo4jAttributesPlaces, attrs_in
from kgrec.graph.neo4j_bulk import WORKERS, write_bulk
from kgrec.graph.neo4j_connection import Neo4jConnection
from kgrec.graph.neo4j_cypher import (
    CLEAR_NODES,
    CLEAR_RELATIONSHIPS,
    CONSTRAINTS,
    COUNTS,
    DELETE_DISLIKES,
    DELETE_INTERACTIONS,
    DELETE_NODES,
    FEEDBACK,
    GET_NODE,
    HAS_RELATIONSHIP,
    IS_EMPTY,
    MERGE_NODES,
    NEIGHBORS,
    SET_HIDDEN,
    TOUCH_USERS,
    UPSERT_DISLIKES,
    UPSERT_FACTS,
    UPSERT_FOLLOWS,
    UPSERT_INTERACTIONS,
    UPSERT_ITEM_TAGS,
    UPSERT_ITEMS,
    UPSERT_TAGGINGS,
    UPSERT_TAGS,
    UPSERT_USERS,
)
from kgrec.graph.neo4j_export import Neo4jExport
from kgrec.graph.neo4j_impressions import Neo4jImpressions
from kgrec.graph.records import Dislike, Fact, Follow, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.graph.rows import check_rows, distinct
from kgrec.graph.schema import ATTR_PREFIX, COUNT_KEYS, ENDPOINTS, KEY, LOCATION, STATE_ID, Label, Rel
from kgrec.graph.store import DISPLAY_PROPERTY, Feedback, GraphStore, Neighbor, neighbor_order

#: Rows per write transaction: big enough to amortise round trips, small enough for the heap
#: (whole-graph writes measured alike from 2,000 to 10,000).
BATCH_SIZE = 10_000
#: Relationships / nodes removed per transaction by ``clear()``.
CLEAR_BATCH = 50_000

T = TypeVar("T")


def _batches(rows: Sequence[T], size: int) -> Iterator[list[T]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def _node_out(label: Label, props: dict[str, Any]) -> dict[str, Any]:
    """Node properties in MemoryStore's shape: reserved names, plus ``attrs`` for users and items."""
    if label in (Label.USER, Label.ITEM):
        out: dict[str, Any] = {"id": props["id"]}
        if label is Label.ITEM and props.get("title") is not None:
            out["title"] = props["title"]
        if label is Label.ITEM and props.get("hidden"):
            out["hidden"] = True
        if label is Label.ITEM and props.get(LOCATION) is not None:
            out[LOCATION] = (float(props[LOCATION].latitude), float(props[LOCATION].longitude))
        out["attrs"] = {k[len(ATTR_PREFIX) :]: v for k, v in props.items() if k.startswith(ATTR_PREFIX)}
        return out
    names = {Label.TAG: ("id", "name", "kind"), Label.ATTRIBUTE: ("id", "kind", "value", "name")}.get(
        label, ("iri", "label"))
    return {k: props[k] for k in names if props.get(k) is not None}


def _tally(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


class Neo4jStore(Neo4jAttributesPlaces, Neo4jExport, Neo4jImpressions, Neo4jConnection, GraphStore):
    """A Neo4j 5 database; opened with ``Neo4jStore.from_url`` or ``open_store("neo4j://…")``."""

    thread_safe = True  # one driver, a session per call

    def __init__(
        self,
        uri: str,
        auth: tuple[str, str] | None = None,
        database: str | None = None,
        batch_size: int = BATCH_SIZE,
        workers: int = WORKERS,
    ) -> None:
        self.batch_size = batch_size
        #: Concurrent write transactions of a create-mode ``write_graph``.
        self.workers = workers
        super().__init__(uri, auth, database)

    def _prepare(self) -> None:
        for statement in CONSTRAINTS:
            self.run_write(statement, {})

    def _write_rows(
        self, query: str, rows: list[dict[str, Any]], ends: Sequence[tuple[Label, str]] = (),
        touch: str | None = None,
    ) -> int:
        """Write ``rows`` in batches, one transaction each; ``ends`` names the (label, field)
        of every end node, which the batch MERGEs first so the rows can MATCH them; ``touch``
        names the user field whose users get a new ``rev`` (their feedback changed)."""
        for batch in _batches(rows, self.batch_size):

            def work(tx: Any, b: list[dict[str, Any]] = batch) -> None:
                if touch is not None:
                    tx.run(TOUCH_USERS, ids=sorted({row[touch] for row in b})).consume()
                for label, field_name in ends:
                    tx.run(MERGE_NODES[label], ids=sorted({row[field_name] for row in b})).consume()
                tx.run(query, rows=b).consume()

            self._write(work)
        return len(rows)

    # -- writes ---------------------------------------------------------------------------
    # Every batch is checked whole by ``graph.rows`` (as MemoryStore's are) before any of it is sent;
    # each returns how many distinct nodes or relationships it wrote (``graph.rows.distinct``).
    def upsert_users(self, rows: Iterable[User]) -> int:
        data = check_rows("users", [(r.id, r.attrs) for r in rows])
        self._write_rows(UPSERT_USERS, [{"id": i, "attrs": attrs_in(a)} for i, a in data])
        return distinct("users", data)

    def upsert_items(self, rows: Iterable[Item]) -> int:
        data = check_rows("items", [(r.id, r.title, r.attrs, r.location) for r in rows])
        self._write_rows(UPSERT_ITEMS, [{"id": i, "title": t, "attrs": attrs_in(a), "location": loc}
                                        for i, t, a, loc in data])
        return distinct("items", data)

    def upsert_tags(self, rows: Iterable[Tag]) -> int:
        data = check_rows("tags", [(r.id, r.name, r.kind) for r in rows])
        self._write_rows(UPSERT_TAGS, [{"id": i, "name": n, "kind": k} for i, n, k in data])
        return distinct("tags", data)

    def upsert_interactions(self, rows: Iterable[Interaction]) -> int:
        data = check_rows("interacted", [(r.user, r.item, r.weight, r.rating, r.ts) for r in rows])
        self._write_rows(
            UPSERT_INTERACTIONS,
            [{"user": u, "item": i, "weight": w, "rating": rt, "ts": ts} for u, i, w, rt, ts in data],
            [(Label.ITEM, "item")], touch="user",
        )
        return distinct("interacted", data)

    def upsert_dislikes(self, rows: Iterable[Dislike]) -> int:
        data = check_rows("disliked", [(r.user, r.item, r.ts) for r in rows])
        self._write_rows(
            UPSERT_DISLIKES, [{"user": u, "item": i, "ts": ts} for u, i, ts in data], [(Label.ITEM, "item")],
            touch="user",
        )
        return distinct("disliked", data)

    def set_hidden(self, ids: Iterable[str], hidden: bool) -> int:
        rows = check_rows("hidden", [(k, hidden) for k in dict.fromkeys(ids)])
        found = 0
        for batch in _batches([k for k, _ in rows], self.batch_size):

            def set_batch(tx: Any, b: list[str] = batch) -> int:
                return tx.run(SET_HIDDEN, ids=b, hidden=hidden, state=STATE_ID).single()["found"]

            found += self._write(set_batch)
        return found

    def upsert_taggings(self, rows: Iterable[Tagging]) -> int:
        data = check_rows("tagged", [(r.user, r.item, r.tag, r.ts) for r in rows])
        ends = [(Label.USER, "user"), (Label.ITEM, "item"), (Label.TAG, "tag")]
        self._write_rows(
            UPSERT_TAGGINGS, [{"user": u, "item": i, "tag": t, "ts": ts} for u, i, t, ts in data], ends
        )
        return distinct("tagged", data)

    def upsert_item_tags(self, rows: Iterable[ItemTag]) -> int:
        data = check_rows("has_tag", [(r.item, r.tag, r.count) for r in rows])
        self._write_rows(
            UPSERT_ITEM_TAGS, [{"item": i, "tag": t, "count": c} for i, t, c in data],
            [(Label.ITEM, "item"), (Label.TAG, "tag")],
        )
        return distinct("has_tag", data)

    def upsert_follows(self, rows: Iterable[Follow]) -> int:
        data = check_rows("follows", [(r.user, r.friend, r.weight) for r in rows])
        self._write_rows(
            UPSERT_FOLLOWS, [{"user": u, "friend": f, "weight": w} for u, f, w in data],
            [(Label.USER, "user"), (Label.USER, "friend")],
        )
        return distinct("follows", data)

    def upsert_facts(self, rows: Iterable[Fact]) -> int:
        data = check_rows("facts", [(r.item, r.predicate, r.entity, r.entity_label) for r in rows])
        self._write_rows(
            UPSERT_FACTS, [{"item": i, "predicate": p, "entity": e, "label": lb} for i, p, e, lb in data],
            [(Label.ITEM, "item"), (Label.ENTITY, "entity")],
        )
        return distinct("facts", data)

    def is_empty(self) -> bool:
        """No node at all, of any label (an analyst's own nodes count too)."""
        return bool(self._read(lambda tx: tx.run(IS_EMPTY).single()["empty"]))

    def _write_whole(
        self, checked: CheckedRecords, create: bool, batch: int, progress: Callable[[int], object],
        timings: dict[str, float],
    ) -> dict[str, int]:
        """Through ``graph.neo4j_bulk``, from the checked rows: nodes and relationships go in
        transactions of ``min(batch, batch_size)`` rows; ``create`` CREATEs (``workers``
        transactions at a time), ``merge`` MERGEs."""
        graph = resolve(checked)
        write_bulk(self._write, graph, create=create, batch=min(batch, self.batch_size), workers=self.workers,
                   progress=progress, timings=timings)
        if not create:  # merged feedback may keep a user's counts: a new rev tells servers to re-read
            users = sorted({r[0] for table in ("interacted", "disliked", "has_attribute")
                            for r in checked.tables[table]})
            for chunk in _batches(users, self.batch_size):

                def touch(tx: Any, b: list[str] = chunk) -> Any:
                    return tx.run(TOUCH_USERS, ids=b).consume()

                self._write(touch)
        if graph.hidden:
            self.set_hidden(graph.hidden, True)
        return dict(graph.written)

    def _delete_nodes(self, label: Label, ids: Iterable[str]) -> int:
        keys = sorted(set(ids))
        deleted = 0
        for batch in _batches(keys, self.batch_size):

            def delete_batch(tx: Any, b: list[str] = batch) -> int:
                return tx.run(DELETE_NODES[label], ids=b, state=STATE_ID).single()["deleted"]

            deleted += self._write(delete_batch)
        return deleted

    def delete_users(self, ids: Iterable[str]) -> int:
        return self._delete_nodes(Label.USER, ids)

    def delete_items(self, ids: Iterable[str]) -> int:
        return self._delete_nodes(Label.ITEM, ids)

    def _delete_pairs(self, query: str, pairs: Iterable[tuple[str, str]]) -> int:
        rows = [{"user": u, "item": i} for u, i in sorted(set(pairs))]
        deleted = 0
        for batch in _batches(rows, self.batch_size):

            def delete_batch(tx: Any, b: list[dict[str, str]] = batch) -> int:
                return tx.run(query, rows=b).single()["deleted"]

            deleted += self._write(delete_batch)
        return deleted

    def delete_interactions(self, pairs: Iterable[tuple[str, str]]) -> int:
        return self._delete_pairs(DELETE_INTERACTIONS, pairs)

    def delete_dislikes(self, pairs: Iterable[tuple[str, str]]) -> int:
        return self._delete_pairs(DELETE_DISLIKES, pairs)

    def clear(self) -> None:
        """Delete relationships, then nodes, in bounded batches (one huge transaction would
        exhaust the heap); constraints and indexes stay."""
        for query in (CLEAR_RELATIONSHIPS, CLEAR_NODES):

            def clear_batch(tx: Any, q: str = query) -> int:
                return tx.run(q, batch=CLEAR_BATCH).single()["deleted"]

            while self._write(clear_batch):
                pass

    # -- reads ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        row = self._read(lambda tx: tx.run(COUNTS).single())
        return {k: int(row[k]) for k in COUNT_KEYS}

    def feedback(self, user: str, user_token: Hashable = None, hidden_token: Hashable = None,
                 impressions_token: Hashable = None) -> Feedback:
        """One read transaction (``FEEDBACK``): a few bytes when the caller's tokens are current."""
        # The protocol types tokens as opaque Hashables; this store's user tokens are the tuples its Feedback carries.
        token = None if user_token is None else list(cast("tuple[Any, ...]", user_token))
        seen = None if impressions_token is None else list(cast("tuple[Any, ...]", impressions_token))
        params = {"user": user, "state": STATE_ID, "hidden_token": hidden_token, "user_token": token,
                  "impressions_token": seen}
        row = self._read(lambda tx: tx.run(FEEDBACK, params).single())
        inter, disl, hidden, attrs = row["interacted"], row["disliked"], row["hidden"], row["attributes"]
        imps = row["impressions"]
        return Feedback(
            user_token=tuple(row["user_token"]), known=bool(row["known"]),
            interacted=None if inter is None else {i: float(w) for i, w in inter},
            disliked=None if disl is None else frozenset(disl),
            hidden_token=row["hidden_token"], hidden=None if hidden is None else frozenset(hidden),
            attributes=None if attrs is None else frozenset(attrs),
            shown=None if imps is None else _tally(i for i, _ in imps),
            skipped=None if imps is None else _tally(i for i, skipped in imps if skipped),
            impressions_token=tuple(row["impressions_token"]),
        )

    def get_node(self, label: Label, key: str) -> dict[str, Any] | None:
        label = Label(label)
        rows = self._read(lambda tx: tx.run(GET_NODE[label], key=key).data())
        return _node_out(label, rows[0]["props"]) if rows else None

    def neighbors(
        self, label: Label, key: str, rels: Sequence[Rel] | None = None, limit: int = 100
    ) -> list[Neighbor]:
        label = Label(label)
        wanted = None if rels is None else [Rel(r).value for r in rels]
        rows = self._read(lambda tx: tx.run(NEIGHBORS[label], key=key, rels=wanted).data())
        found = []
        for row in rows:
            other = next((Label(x) for x in row["labels"] if x in Label._value2member_map_), None)
            if other is None:
                continue  # a node outside the schema (an analyst's own); not part of the graph model
            m = row["m"]
            name = m.get(DISPLAY_PROPERTY[other])
            found.append(
                Neighbor(
                    Rel(row["rel"]),
                    row["outgoing"],
                    other,
                    m[KEY[other]],
                    None if name is None else str(name),
                    row["props"],
                )
            )
        found.sort(key=neighbor_order)
        return found[: max(limit, 0)]

    def has_relationship(self, src: tuple[Label, str], rel: Rel, dst: tuple[Label, str]) -> bool:
        rel = Rel(rel)
        if (Label(src[0]), Label(dst[0])) != ENDPOINTS[rel]:
            return False
        return bool(self._read(lambda tx: tx.run(HAS_RELATIONSHIP[rel], src=src[1], dst=dst[1]).single()["found"]))
