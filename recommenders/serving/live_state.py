"""The store as the truth after the bundle: per request, what a server must know beyond it.

A bundle is a frozen snapshot; interactions, dislikes and hidden flags written since live in
the store. ``LiveState.state(user)`` asks the store for them on every request through
``GraphStore.feedback``, passing the tokens of what it cached, so an unchanged user costs one
small read (a ``stat`` of two files for the embedded store, one short query for Neo4j) and a
changed one ships its history once. Every worker process thus sees every acknowledged write
at its next request, and a restarted server sees them too. When the store cannot be reached
the last known state (or the bundle's) is served and ``stale`` says so. The store adds to the
bundle: what was deleted since is taken back by the next ``kgrec train``.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from kgrec.graph.store import Feedback, GraphStore
from kgrec.graph.store_errors import StoreUnavailable
from kgrec.recommenders.serving.query import BUNDLE_ONLY, UserState
from kgrec.recommenders.serving.server import Server

T = TypeVar("T")
#: Runs a function against the store (the API's ``StoreHandle.call``, or a direct call).
StoreCall = Callable[[Callable[[GraphStore], T]], T]


@dataclass(frozen=True)
class Live:
    """A user's state for one request; ``stale`` when the store could not be asked."""

    state: UserState
    stale: bool = False


class LiveState:
    """Per-user cache of ``UserState`` keyed by the store's tokens (thread-safe, bounded)."""

    def __init__(self, server: Server, call: StoreCall, max_users: int = 100_000) -> None:
        self.server = server
        self._call = call
        self._max_users = max_users
        self._lock = threading.Lock()
        #: user -> (history token, impressions token, state)
        self._users: OrderedDict[str, tuple[Hashable, Hashable, UserState]] = OrderedDict()
        self._hidden: tuple[Hashable, frozenset[str]] | None = None

    def state(self, user: str) -> Live:
        with self._lock:
            cached = self._users.get(user)
            hidden = self._hidden
        try:
            fb: Feedback = self._call(lambda st: st.feedback(
                user, cached[0] if cached else None, hidden[0] if hidden else None, cached[1] if cached else None))
        except StoreUnavailable:
            base = cached[2] if cached else BUNDLE_ONLY
            return Live(base if hidden is None else replace(base, hidden=hidden[1]), stale=True)
        if fb.hidden is not None:
            hidden = (fb.hidden_token, fb.hidden)
        state = cached[2] if fb.interacted is None and cached is not None else self._user_state(user, fb)
        if fb.shown is not None:  # the impressions part moved (a list was logged, or feedback named one)
            state = replace(state, shown=fb.shown or None, skipped=fb.skipped or None)
        elif cached is not None:
            state = replace(state, shown=cached[2].shown, skipped=cached[2].skipped)
        state = replace(state, hidden=hidden[1] if hidden else None)
        with self._lock:
            self._hidden = hidden
            self._users[user] = (fb.user_token, fb.impressions_token, state)
            self._users.move_to_end(user)
            while len(self._users) > self._max_users:
                self._users.popitem(last=False)
        return Live(state)

    def hidden(self) -> frozenset[str] | None:
        """The hidden items now (None when the store cannot say: serve the bundle's)."""
        live = self.state("")
        return None if live.stale and self._hidden is None else live.state.hidden

    def _user_state(self, user: str, fb: Feedback) -> UserState:
        """The bundle's history and dislikes plus what the store holds now (its weights win).
        Deletions since the bundle are not taken back before the next ``kgrec train``, so a store
        that lacks part of the bundle (another or an emptied database) changes nothing."""
        before = self.server.bundle_history(user)
        history = {**before, **(fb.interacted or {})}
        disliked = self.server.bundle_dislikes(user) | (fb.disliked or frozenset())
        same = _same_history(history, before) and not (disliked - self.server.bundle_dislikes(user))
        return UserState(history=None if same else history, disliked=disliked, known=fb.known,
                         attributes=fb.attributes)

    def note_shown(self, user: str, items: Iterable[str]) -> None:
        """Count a list this process just served as shown and not chosen in the user's cached
        state, until the store has the impressions: their write moves the user's impressions
        token, and the next request reads them from the store, whichever process served them."""
        with self._lock:
            cached = self._users.get(user)
            if cached is None:
                return
            token, seen, state = cached
            shown, skipped = dict(state.shown or {}), dict(state.skipped or {})
            for item in items:
                shown[item] = shown.get(item, 0) + 1
                skipped[item] = skipped.get(item, 0) + 1
            self._users[user] = (token, seen, replace(state, shown=shown, skipped=skipped))


def _same_history(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Equal items and weights (the snapshot keeps weights as float32, the store as float64)."""
    return a.keys() == b.keys() and all(math.isclose(w, b[x], rel_tol=1e-6, abs_tol=1e-9) for x, w in a.items())
