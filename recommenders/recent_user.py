"""One cache for "the user just scored": serving scores a user, then explains the list it served.

Every model that keeps per-user work between those two calls keeps it here, one entry per
cache: a single-slot cache is enough for that pattern, and its entry is one tuple swapped
atomically, so the threads of one worker can share a model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class RecentUser(Generic[V]):
    """The value computed for the most recent key."""

    def __init__(self) -> None:
        self._entry: tuple[Hashable, V] | None = None

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value for ``key``: kept when ``key`` was the last one asked for, else computed."""
        entry = self._entry
        if entry is not None and entry[0] == key:
            return entry[1]
        value = compute()
        self._entry = (key, value)
        return value

    def clear(self) -> None:
        self._entry = None
