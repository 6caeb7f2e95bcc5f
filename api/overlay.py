"""Recent writes kept in memory so they shape the next response without retraining.

The bundle is an immutable snapshot of the graph at training time. Feedback posted after
that lives here, per user, until the next ``kgrec train``: seen items are excluded from
then on, and recommenders that can score from a history vector fold it in.
Users and items created through the API are remembered here too, so that reads of them
work while the store is down.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from graph.records import Interaction, Item, User


@dataclass(frozen=True)
class OverlayStats:
    users: int
    interactions: int


class InteractionOverlay:
    """Thread-safe per-user ``{item: weight}`` of interactions posted since the bundle was built.

    Bounded: each user keeps the ``per_user`` most recent items, so a chatty client cannot
    grow a worker's memory without limit.
    """

    def __init__(self, per_user: int = 1000) -> None:
        self._per_user = per_user
        self._lock = threading.Lock()
        self._history: dict[str, dict[str, float]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._items: dict[str, dict[str, Any]] = {}

    def add_interactions(self, rows: list[Interaction]) -> None:
        with self._lock:
            for r in rows:
                h = self._history.setdefault(r.user, {})
                h.pop(r.item, None)  # re-insert so dict order is recency order
                h[r.item] = float(r.weight)
                while len(h) > self._per_user:
                    h.pop(next(iter(h)))

    def add_users(self, rows: list[User]) -> None:
        with self._lock:
            for u in rows:
                self._users[u.id] = {"id": u.id, "attrs": dict(u.attrs)}

    def add_items(self, rows: list[Item]) -> None:
        with self._lock:
            for i in rows:
                self._items[i.id] = {"id": i.id, "title": i.title, "attrs": dict(i.attrs)}

    def history(self, user: str) -> dict[str, float]:
        """A copy of the user's recent interactions, oldest first."""
        with self._lock:
            return dict(self._history.get(user, {}))

    def user(self, user: str) -> dict[str, Any] | None:
        with self._lock:
            return self._users.get(user)

    def item(self, item: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(item)

    def stats(self) -> OverlayStats:
        with self._lock:
            return OverlayStats(users=len(self._history), interactions=sum(len(h) for h in self._history.values()))
