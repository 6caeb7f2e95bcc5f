"""One user's feedback as ``GraphStore.feedback`` answers it, for MemoryStore (mixed in)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable

from kgrec.graph.memory_impressions import MemoryImpressions
from kgrec.graph.memory_reads import MemoryReads
from kgrec.graph.memory_rows import _DISLIKED, _INTERACTED
from kgrec.graph.schema import Label
from kgrec.graph.store import Feedback


class MemoryFeedback(MemoryReads, MemoryImpressions):
    """The read that serving makes per request: history, dislikes, attributes, impressions, hidden items."""

    @abstractmethod
    def refresh(self) -> None:
        """Bring the in-memory graph up to the files (MemoryStore's)."""

    def feedback(self, user: str, user_token: Hashable = None, hidden_token: Hashable = None,
                 impressions_token: Hashable = None) -> Feedback:
        """From memory after ``refresh()``; the tokens are this store's change counters, so any
        write anywhere makes a caller re-read a user (microseconds here); impressions, written at
        the pace of serving, have a counter per user (``graph.memory_impressions``)."""
        self.refresh()
        node = (Label.USER, user)
        known = node in self.graph
        interacted: dict[str, float] | None = None
        disliked: frozenset[str] | None = None
        attributes: frozenset[str] | None = None
        shown: dict[str, int] | None = None
        skipped: dict[str, int] | None = None
        if user_token != self._version:
            interacted, dislikes = {}, set()
            attributes = self._user_attributes(node) if known else frozenset()
            if known:
                for _, (_, item), ekey, data in self.graph.out_edges(node, keys=True, data=True):
                    if ekey == _INTERACTED:
                        interacted[item] = float(data["props"]["weight"])
                    elif ekey == _DISLIKED:
                        dislikes.add(item)
            disliked = frozenset(dislikes)
        seen_token = self._impressions_token(user)
        if impressions_token != seen_token:
            shown, skipped = self._user_impressions(user)
        hidden = None if hidden_token == self._hidden_rev else self._hidden_items()
        return Feedback(self._version, known, interacted, disliked, self._hidden_rev, hidden, attributes,
                        shown, skipped, seen_token)
