"""Neo4jStore's impressions (``graph.impressions``): ``(:User)-[:SAW]->(:Impression)-[:SHOWS]->(:Item)``.

A mixin over the connection (``_read``, ``_write``) and the store's batched ``_write_rows``;
every statement is a constant of ``graph.neo4j_cypher`` and every batch is checked by
``graph.rows`` before any of it is sent, as for the other kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kgrec.graph.impression_rows import check_impressions
from kgrec.graph.impressions import OUTCOMES, Impression, ImpressionStore, Outcome
from kgrec.graph.neo4j_cypher import (
    GET_IMPRESSIONS,
    IMPRESSION_COUNT,
    LOG_IMPRESSIONS,
    LOGGED_IMPRESSIONS,
    RECORD_OUTCOMES,
)
from kgrec.graph.rows import check_rows, distinct
from kgrec.graph.schema import Label

#: Impression properties in ``impressions`` row order (``Impression.row``).
_NAMES = ("id", "request", "user", "item", "position", "at", "policy", "model", "source", "propensity", "score",
          "explored", "eps", "tau", "protect", "pool", "pool_logits", "chosen_at", "disliked_at")


def _from_props(p: dict[str, Any]) -> Impression:
    row = [p.get(name) for name in _NAMES]
    return Impression.from_row(row)


class Neo4jImpressions(ImpressionStore):
    """``ImpressionStore`` for Neo4jStore."""

    _read: Callable[..., Any]
    _write: Callable[..., Any]
    _write_rows: Callable[..., int]

    def log_impressions(self, rows: Iterable[Impression], checked: bool = False) -> int:
        imps = list(rows)
        data = [r.row() for r in imps] if checked else check_impressions(imps)
        payload = [{"id": r[0], "user": r[2], "item": r[3],
                    "props": {k: v for k, v in zip(_NAMES, r, strict=True) if v is not None}} for r in data]
        self._write_rows(LOG_IMPRESSIONS, payload, [(Label.USER, "user"), (Label.ITEM, "item")])
        return distinct("impressions", data)

    def get_impressions(self, ids: Iterable[str]) -> dict[str, Impression]:
        keys = sorted(set(ids))
        if not keys:
            return {}
        rows = self._read(lambda tx: tx.run(GET_IMPRESSIONS, ids=keys).data())
        return {r["p"]["id"]: _from_props(r["p"]) for r in rows}

    def record_outcomes(self, rows: Iterable[Outcome]) -> int:
        fresh = {(r.impression, r.kind): r for r in reversed(list(rows))}  # one per (impression, kind): the first
        data = check_rows("outcomes", [r.row() for r in fresh.values()])
        if not data:
            return 0
        payload = [{"impression": i, "kind": k, "at": at} for i, k, at in data if k in OUTCOMES]

        def work(tx: Any) -> int:
            return int(tx.run(RECORD_OUTCOMES, rows=payload).single()["marked"])

        return int(self._write(work))

    def logged_impressions(self, since: float | None = None, until: float | None = None) -> list[Impression]:
        rows = self._read(lambda tx: tx.run(LOGGED_IMPRESSIONS, since=since, until=until).data())
        return [_from_props(r["p"]) for r in rows]

    def impression_count(self) -> int:
        return int(self._read(lambda tx: tx.run(IMPRESSION_COUNT).single()["n"]))
