"""Neo4jStore's writes and reads of user attributes (Attribute nodes, HAS_ATTRIBUTE) and places
(``Item.location``, a WGS-84 point under a point index).

A mixin over the connection (``_read``, ``_write``) and the store's batched ``_write_rows``; every
statement is a constant of ``graph.neo4j_cypher`` and every batch is checked by ``graph.rows``
before any of it is sent, as for the other kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from kgrec.graph.geo import check_query, neo4j_metres, within
from kgrec.graph.neo4j_cypher import (
    ATTRIBUTES,
    ITEMS_NEAR,
    TOUCH_USERS,
    UPSERT_ATTRIBUTES,
    UPSERT_USER_ATTRIBUTES,
    UPSERT_USERS,
)
from kgrec.graph.neo4j_export import attributes_out
from kgrec.graph.records import Attribute, User, UserAttribute
from kgrec.graph.rows import check_rows, distinct
from kgrec.graph.schema import ATTR_PREFIX, Label


def attrs_in(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as the node's ``attr_*`` properties."""
    return {ATTR_PREFIX + str(k): v for k, v in attrs.items()}


class Neo4jAttributesPlaces:
    """``upsert_attributes``, ``upsert_user_attributes``, ``_write_profiles``, ``attributes`` and
    ``items_within`` of ``GraphStore``, for Neo4jStore."""

    _read: Callable[..., Any]
    _write: Callable[..., Any]
    _write_rows: Callable[..., int]

    def upsert_attributes(self, rows: Iterable[Attribute]) -> int:
        data = check_rows("attributes", [(r.id, r.kind, r.value, r.name) for r in rows])
        self._write_rows(UPSERT_ATTRIBUTES, _attribute_rows(data))
        return distinct("attributes", data)

    def upsert_user_attributes(self, rows: Iterable[UserAttribute]) -> int:
        """Links; the users get a new ``rev`` in the same transaction (their feedback changed)."""
        data = check_rows("has_attribute", [(r.user, r.attribute) for r in rows])
        self._write_rows(UPSERT_USER_ATTRIBUTES, [{"user": u, "attribute": a} for u, a in data],
                         [(Label.ATTRIBUTE, "attribute")], touch="user")
        return distinct("has_attribute", data)

    def _write_profiles(self, users: list[User], attributes: list[Attribute], links: list[UserAttribute]) -> int:
        """Users, their Attribute nodes and links in one write transaction: all of it or none
        (``UPSERT_USERS`` drops the users' old links; the users given links get a new ``rev``)."""
        people = check_rows("users", [(r.id, r.attrs) for r in users])
        nodes = check_rows("attributes", [(r.id, r.kind, r.value, r.name) for r in attributes])
        edges = check_rows("has_attribute", [(r.user, r.attribute) for r in links])

        def work(tx: Any) -> None:
            tx.run(UPSERT_USERS, rows=[{"id": i, "attrs": attrs_in(a)} for i, a in people]).consume()
            tx.run(UPSERT_ATTRIBUTES, rows=_attribute_rows(nodes)).consume()
            tx.run(TOUCH_USERS, ids=sorted({u for u, _ in edges})).consume()
            tx.run(UPSERT_USER_ATTRIBUTES, rows=[{"user": u, "attribute": a} for u, a in edges]).consume()

        self._write(work)
        return distinct("users", people)

    def attributes(self) -> list[Attribute]:
        rows = self._read(lambda tx: tx.run(ATTRIBUTES).single()["rows"])
        return sorted(attributes_out(rows), key=lambda a: a.id)

    def items_within(self, lat: float, lon: float, radius_km: float) -> list[tuple[str, float]]:
        """The point index's candidates (``ITEMS_NEAR``), then ``graph.geo``'s exact rule."""
        check_query(lat, lon, radius_km)
        params = {"lat": float(lat), "lon": float(lon), "metres": neo4j_metres(radius_km)}
        row = self._read(lambda tx: tx.run(ITEMS_NEAR, params).single())
        lats, lons = (np.asarray(row[k], dtype=np.float64) for k in ("lat", "lon"))
        return within(row["id"], lats, lons, lat, lon, radius_km)


def _attribute_rows(data: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{"id": i, "kind": k, "value": v, "name": n} for i, k, v, n in data]
