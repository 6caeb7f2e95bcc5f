"""Impressions: what was shown to whom, where, by which policy and with what probability.

One ``(:Impression)`` node per item shown in a served list, ``(:User)-[:SAW]->(:Impression)
-[:SHOWS]->(:Item)``. Its id is ``<request>:<position>`` (the request id a server generates per
served list, the 1-based position), so a retried write is the same node: every store writes an
impression at most once. The request's candidate pool and its logits (what an off-policy
estimate needs to recompute any propensity) travel once per request, on the impression at
position 1 (``pool``, ``pool_logits``), with the policy's parameters on every impression.

Feedback that names an impression (``Outcome``) sets its ``chosen_at`` or ``disliked_at`` once:
the same feedback twice counts once. "Shown but not chosen" is derived (neither is set), never
written. ``ImpressionStore`` is the interface both stores implement; the row checks here are the
ones ``graph.rows`` applies to the ``impressions`` and ``outcomes`` tables.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kgrec.graph import values

#: Outcome kinds and the Impression property each sets.
OUTCOMES = {"chosen": "chosen_at", "disliked": "disliked_at"}
#: ``<request>:<position>``: a request id of 8-64 letters, digits, ``-`` or ``_``, then the position.
IMPRESSION_ID = re.compile(r"(?P<request>[A-Za-z0-9_-]{8,64}):(?P<position>[1-9][0-9]{0,3})")
#: The longest candidate pool stored per request.
MAX_POOL = 1000


def impression_id(request: str, position: int) -> str:
    return f"{request}:{position}"


def parse_impression_id(text: str) -> tuple[str, int] | None:
    """(request, position) of a well-formed impression id, else None."""
    m = IMPRESSION_ID.fullmatch(text) if isinstance(text, str) else None
    return None if m is None else (m["request"], int(m["position"]))


@dataclass(frozen=True)
class Impression:
    """One shown item. ``at`` is epoch seconds (float); ``propensity`` the probability with which
    the policy put this item at this position given the items above it (1.0 when deterministic);
    ``pool``/``pool_logits`` only on position 1."""

    id: str
    request: str
    user: str
    item: str
    position: int
    at: float
    policy: str
    model: str
    source: str
    propensity: float
    score: float
    explored: bool = False
    eps: float = 0.0
    tau: float = 1.0
    protect: int = 0
    pool: tuple[str, ...] | None = None
    pool_logits: tuple[float, ...] | None = None
    chosen_at: float | None = None
    disliked_at: float | None = None

    def row(self) -> tuple[Any, ...]:
        """The ``impressions`` table row (``FIELDS`` order)."""
        return (self.id, self.request, self.user, self.item, self.position, self.at, self.policy, self.model,
                self.source, self.propensity, self.score, self.explored, self.eps, self.tau, self.protect,
                None if self.pool is None else list(self.pool),
                None if self.pool_logits is None else list(self.pool_logits), self.chosen_at, self.disliked_at)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Impression:
        r = list(row)
        r[15] = None if r[15] is None else tuple(r[15])
        r[16] = None if r[16] is None else tuple(float(x) for x in r[16])
        return cls(*r)

    @property
    def skipped(self) -> bool:
        """Shown and not chosen (no feedback named it)."""
        return self.chosen_at is None and self.disliked_at is None


@dataclass(frozen=True)
class Outcome:
    """Feedback naming an impression: ``kind`` is ``chosen`` or ``disliked``, ``at`` epoch seconds."""

    impression: str
    kind: str
    at: float

    def row(self) -> tuple[Any, ...]:
        return (self.impression, self.kind, self.at)


class ImpressionStore(ABC):
    """What a store does with impressions (both ``MemoryStore`` and ``Neo4jStore``)."""

    @abstractmethod
    def log_impressions(self, rows: Iterable[Impression], checked: bool = False) -> int:
        """Write impressions (a retried write of the same ids changes nothing); returns how many
        distinct ids the batch held. The users' impressions tokens move. ``checked``: the caller
        ran ``graph.impression_rows.check_impressions`` on this batch already."""

    @abstractmethod
    def get_impressions(self, ids: Iterable[str]) -> dict[str, Impression]:
        """The stored impressions among ``ids`` (missing ones are absent)."""

    @abstractmethod
    def record_outcomes(self, rows: Iterable[Outcome]) -> int:
        """Mark impressions chosen or disliked, each kind at most once (the first time stands);
        returns how many marks are new. Unknown impressions are skipped."""

    @abstractmethod
    def logged_impressions(self, since: float | None = None, until: float | None = None) -> list[Impression]:
        """Every stored impression with ``since <= at < until``, by (at, request, position)."""

    @abstractmethod
    def impression_count(self) -> int: ...


def order_key(imp: Impression) -> tuple[float, str, int]:
    return (imp.at, imp.request, imp.position)


# -- row checks (``graph.rows`` registers these tables) -------------------------------------------
def _id(v: object) -> bool:
    return type(v) is str and v != ""


def _num(v: object) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


def _num_or_none(v: object) -> bool:
    return v is None or _num(v)


def _position(v: object) -> bool:
    return type(v) is int and 1 <= v <= 9999


def _propensity(v: object) -> bool:
    return _num(v) and 0.0 < float(v) <= 1.0  # type: ignore[arg-type]


def _bool(v: object) -> bool:
    return type(v) is bool


def _protect(v: object) -> bool:
    return type(v) is int and 0 <= v <= 9999


def _ids_or_none(v: object) -> bool:
    return v is None or (type(v) is list and len(v) <= MAX_POOL and all(type(x) is str and x for x in v))


def _nums_or_none(v: object) -> bool:
    return v is None or (type(v) is list and len(v) <= MAX_POOL and all(_num(x) for x in v))


def _kind(v: object) -> bool:
    return v in OUTCOMES


MEANING: dict[Callable[[object], bool], str] = {
    _position: "an integer position 1..9999",
    _propensity: "a probability in (0, 1]",
    _protect: "an integer 0..9999",
    _ids_or_none: f"a list of at most {MAX_POOL} non-empty strings or None",
    _nums_or_none: f"a list of at most {MAX_POOL} finite numbers or None",
    _kind: f"one of {', '.join(OUTCOMES)}",
}

FIELDS: dict[str, tuple[tuple[str, Callable[[object], bool]], ...]] = {
    "impressions": (
        ("impression id", _id), ("impression request", _id), ("impression user", _id), ("impression item", _id),
        ("impression position", _position), ("impression at", _num), ("impression policy", _id),
        ("impression model", _id), ("impression source", _id), ("impression propensity", _propensity),
        ("impression score", _num), ("impression explored", _bool), ("impression eps", _num),
        ("impression tau", _num), ("impression protect", _protect), ("impression pool", _ids_or_none),
        ("impression pool logits", _nums_or_none), ("impression chosen_at", _num_or_none),
        ("impression disliked_at", _num_or_none),
    ),
    "outcomes": (("outcome impression", _id), ("outcome kind", _kind), ("outcome at", _num)),
}


def _none(_: object) -> str | None:
    return None


def _impression_id_problem(v: object) -> str | None:
    return None if parse_impression_id(v) is not None else "is not REQUEST:POSITION"  # type: ignore[arg-type]


def _pool_problem(v: object) -> str | None:
    if v is None:
        return None
    for x in v:  # type: ignore[attr-defined]
        found = values.id_problem(x)
        if found is not None:
            return f"holds {x!r:.40}, which {found}"
    return None


_ID = values.id_problem
VALUE_RULES: dict[str, tuple[Callable[[Any], str | None], ...]] = {
    "impressions": (_impression_id_problem, values.key_problem, _ID, _ID, _none, values.number_problem,
                    values.key_problem, values.key_problem, values.key_problem, _none, values.number_problem,
                    _none, _none, _none, _none, _pool_problem, _none, _none, _none),
    "outcomes": (_impression_id_problem, _none, values.number_problem),
}
KEY_WIDTH = {"impressions": 1, "outcomes": 2}


def check_consistent(rows: Sequence[Impression]) -> str | None:
    """What is wrong beyond single fields: the id must be ``request:position``, the pool and its
    logits of one length; None when fine."""
    for n, imp in enumerate(rows, 1):
        if impression_id(imp.request, imp.position) != imp.id:
            return f"impression row {n}: id {imp.id!r} is not {imp.request}:{imp.position}"
        if (imp.pool is None) != (imp.pool_logits is None) or (
                imp.pool is not None and imp.pool_logits is not None and len(imp.pool) != len(imp.pool_logits)):
            return f"impression row {n}: pool and pool_logits must both be given, of one length"
    return None


def as_impression_store(store: object) -> ImpressionStore:
    """``store`` as an ``ImpressionStore`` (both stores are); StoreError for one that is not."""
    from kgrec.graph.store_errors import StoreError

    if not isinstance(store, ImpressionStore):
        raise StoreError(f"{type(store).__name__} does not store impressions")
    return store
