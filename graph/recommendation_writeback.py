"""Write a model's recommendations back into Neo4j as ``(:User)-[:RECOMMENDED]->(:Item)``.

Analysts then query what a model said next to what users did (see the cookbook). Each
batch is one Cypher statement, so one transaction: it deletes that model's previous
recommendations for the batch's users and creates the new ones together. A reader never
sees a user with half a list, a crash leaves every user with either the old or the new
list, and rerunning gives the same relationships (only ``at`` changes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: One recommendation: (user id, item id, score, rank starting at 1).
RecRow = tuple[str, str, float, int]

REPLACE_RECOMMENDATIONS = """
UNWIND $users AS uid
OPTIONAL MATCH (:User {id: uid})-[old:RECOMMENDED {model: $model}]->(:Item)
WITH collect(old) AS olds
FOREACH (r IN olds | DELETE r)
WITH size(olds) AS deleted
CALL () {
  UNWIND $rows AS row
  MATCH (u:User {id: row.user})
  MATCH (i:Item {id: row.item})
  CREATE (u)-[:RECOMMENDED {model: $model, score: row.score, rank: row.rank, at: $at}]->(i)
  RETURN count(*) AS created
}
RETURN deleted, created
"""

DELETE_MODEL = """
MATCH (:User)-[r:RECOMMENDED {model: $model}]->(:Item)
WITH r LIMIT $batch
DELETE r
RETURN count(*) AS deleted
"""


class CypherWriter(Protocol):
    """What write-back needs from a store: ``Neo4jStore.run_write``."""

    def run_write(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


class WritebackError(ValueError):
    """Recommendations that cannot be written as given (bad rank, score, or duplicates)."""


@dataclass
class WritebackResult:
    """What a write-back did: users replaced, relationships deleted and created, rows skipped."""

    model: str
    users: int = 0
    deleted: int = 0
    created: int = 0
    skipped: int = 0
    batches: int = 0
    at: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("model", "users", "deleted", "created", "skipped", "batches", "at")}


def _check(model: str, rows: Iterable[RecRow]) -> dict[str, list[dict[str, Any]]]:
    """Group rows by user (first-seen order) and refuse anything that would corrupt a list."""
    if not model or not isinstance(model, str):
        raise WritebackError("model must be a non-empty string")
    by_user: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for n, (user, item, score, rank) in enumerate(rows, 1):
        if not user or not item:
            raise WritebackError(f"row {n}: empty user or item id")
        if (user, item) in seen:
            raise WritebackError(f"row {n}: item {item!r} recommended twice to user {user!r}")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise WritebackError(f"row {n}: rank must be an integer >= 1, got {rank!r}")
        score = float(score)
        if not math.isfinite(score):
            raise WritebackError(f"row {n}: score must be finite, got {score!r}")
        seen.add((user, item))
        by_user.setdefault(str(user), []).append({"user": str(user), "item": str(item), "score": score, "rank": rank})
    return by_user


def _batches(by_user: dict[str, list[dict[str, Any]]], batch_size: int) -> Iterator[tuple[list[str], list[dict]]]:
    """Batches of whole users: a user's list is never split, or a later batch would delete it."""
    users: list[str] = []
    rows: list[dict[str, Any]] = []
    for user, user_rows in by_user.items():
        if users and len(rows) + len(user_rows) > batch_size:
            yield users, rows
            users, rows = [], []
        users.append(user)
        rows.extend(user_rows)
    if users:
        yield users, rows


def write_recommendations(
    store: CypherWriter,
    model: str,
    rows: Iterable[RecRow],
    users: Sequence[str] = (),
    batch_size: int = 5000,
    at: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> WritebackResult:
    """Replace ``model``'s recommendations of every user in ``rows`` (and in ``users``).

    Users listed in ``users`` without rows lose that model's old recommendations, so a
    user the model no longer covers does not keep a stale list. Rows naming a user or
    item missing from the graph are skipped and counted. ``progress`` gets the number of
    users done after each batch.
    """
    if batch_size < 1:
        raise WritebackError("batch_size must be at least 1")
    by_user = _check(model, rows)
    for user in users:
        by_user.setdefault(str(user), [])
    result = WritebackResult(model=model, at=int(time.time()) if at is None else int(at))
    for batch_users, batch_rows in _batches(by_user, batch_size):
        out = store.run_write(
            REPLACE_RECOMMENDATIONS, {"users": batch_users, "rows": batch_rows, "model": model, "at": result.at}
        )
        record = out[0] if out else {"deleted": 0, "created": 0}
        result.users += len(batch_users)
        result.deleted += int(record["deleted"])
        result.created += int(record["created"])
        result.skipped += len(batch_rows) - int(record["created"])
        result.batches += 1
        if progress is not None:
            progress(len(batch_users))
    return result


def delete_recommendations(store: CypherWriter, model: str, batch_size: int = 10000) -> int:
    """Remove every recommendation ``model`` wrote, in bounded transactions; returns how many."""
    total = 0
    while True:
        out = store.run_write(DELETE_MODEL, {"model": model, "batch": batch_size})
        deleted = int(out[0]["deleted"]) if out else 0
        total += deleted
        if deleted < batch_size:
            return total


class _Recommends(Protocol):
    def recommend(self, user_id: str, k: int = 10) -> list[Any]: ...


def recommendation_rows(model: _Recommends, users: Iterable[str], k: int) -> Iterator[RecRow]:
    """(user, item, score, rank) for each user's top ``k`` from one fitted recommender.

    Only the named model's own items are written (no fallback), so a ``RECOMMENDED``
    relationship's ``model`` always says which model produced it.
    """
    for user in users:
        for rank, rec in enumerate(model.recommend(user, k=k), 1):
            yield user, rec.item_id, float(rec.score), rank
