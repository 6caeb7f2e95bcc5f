"""The Recommender protocol and the types every recommender returns.

A recommender reads only a ``GraphSnapshot``; it never talks to a store. An unknown or
cold user gets an empty list, never an exception: the fallback chain fills the gap and
``source`` says which recommender produced each item.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from graph.schema import Label, Rel
from graph.snapshot import GraphSnapshot


@dataclass(frozen=True)
class PathNode:
    label: Label
    id: str
    name: str | None = None


@dataclass(frozen=True)
class PathRel:
    """A relationship on a path; ``forward`` is False when walked against its direction."""

    type: Rel
    forward: bool = True


@dataclass(frozen=True)
class Reason:
    """One path in the graph that supports a recommendation.

    ``nodes`` and ``rels`` alternate (len(nodes) == len(rels) + 1). ``contribution`` is
    this path's share of the score: for additive recommenders the shares sum to the score.
    ``kind`` is ``"cause"`` for a faithful decomposition and ``"evidence"`` where the model
    is not additive (embeddings). ``cypher`` replays the path with ``params``.
    """

    nodes: tuple[PathNode, ...]
    rels: tuple[PathRel, ...]
    contribution: float
    text: str
    cypher: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "cause"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nodes"] = [{"label": n.label.value, "id": n.id, "name": n.name} for n in self.nodes]
        d["rels"] = [{"type": r.type.value, "forward": r.forward} for r in self.rels]
        return d


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    source: str
    reasons: tuple[Reason, ...] = ()


class Recommender(ABC):
    """fit(snapshot) -> recommend(user, k, exclude) / explain(user, item).

    Hyperparameters live in a frozen dataclass ``Config`` (with a ``seed``) given to the
    constructor. ``save``/``load`` write arrays (``.npz``) and JSON, never pickle.
    """

    name: ClassVar[str]
    additive: ClassVar[bool] = True

    @abstractmethod
    def fit(self, snapshot: GraphSnapshot) -> Recommender: ...

    @abstractmethod
    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]: ...

    @abstractmethod
    def explain(self, user_id: str, item_id: str) -> list[Reason]: ...

    @abstractmethod
    def save(self, directory: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> Recommender: ...
