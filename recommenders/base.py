"""The Recommender protocol and the types every recommender returns.

A recommender reads only a ``GraphSnapshot``; it never talks to a store. An unknown or
cold user gets an empty list, never an exception: the fallback chain fills the gap and
``source`` says which recommender produced each item.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from graph.schema import Label, Rel
from graph.snapshot import GraphSnapshot

if TYPE_CHECKING:
    import numpy as np
    import optuna


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


@dataclass(frozen=True)
class TopReasons:
    """The strongest reasons of one explanation, plus what the rest add up to.

    Serving shows a handful of paths out of possibly hundreds; building only those is what
    keeps explanations fast, and ``omitted_contribution`` keeps them faithful: shown plus
    omitted still sum to what the full ``explain`` sums to. ``omitted_magnitude`` (the sum
    of the omitted ``|contribution|``) lets a caller rescale the omitted part (the hybrid).
    """

    reasons: tuple[Reason, ...] = ()
    omitted: int = 0
    omitted_contribution: float = 0.0
    omitted_magnitude: float = 0.0


def top_reasons(reasons: Iterable[Reason], limit: int | None) -> TopReasons:
    """The ``limit`` largest contributions of a full list (stable for ties); None keeps all."""
    ordered = sorted(reasons, key=lambda r: -r.contribution)
    if limit is None or limit >= len(ordered):
        return TopReasons(tuple(ordered))
    rest = ordered[max(limit, 0):]
    return TopReasons(tuple(ordered[: max(limit, 0)]), len(rest), float(sum(r.contribution for r in rest)),
                      float(sum(abs(r.contribution) for r in rest)))


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

    def explain_top(self, user_id: str, item_id: str, limit: int | None = None) -> TopReasons:
        """The ``limit`` strongest reasons and the count and sum of the rest. This default
        slices ``explain``; recommenders with many paths override it to build only those."""
        return top_reasons(self.explain(user_id, item_id), limit)

    def explain_many(self, user_id: str, item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        """``explain_top`` for several items of one user (a served list), so per-user work
        can be done once; this default just loops."""
        return [self.explain_top(user_id, item, limit) for item in item_ids]

    @classmethod
    def search_starts(cls, snapshot: GraphSnapshot) -> list[dict[str, Any]]:
        """Trials a tuner runs right after the defaults (``Tunable``): none by default."""
        return []

    @abstractmethod
    def save(self, directory: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> Recommender: ...


# -- optional abilities, declared by the classes that have them (and checked with isinstance) --
@runtime_checkable
class ScoresAllItems(Protocol):
    """Scores every item of the snapshot for a known user, so a server can filter (tags, hidden
    items, dislikes) on the whole vector instead of asking for ever longer lists."""

    #: Only items scored above zero are recommended (no evidence, no item); factor models: False.
    positive_only: ClassVar[bool]

    def score_user(self, user_id: str) -> np.ndarray | None:
        """All item scores (read-only), or None when the user is unknown or cold."""
        ...


@runtime_checkable
class FoldsInHistory(Protocol):
    """Scores a history newer than the fit (feedback posted since the bundle) without refitting.
    Weights are the raw interaction weights; a negative weight is negative evidence (a dislike)."""

    positive_only: ClassVar[bool]

    def score_history(self, history: Mapping[str, float]) -> np.ndarray | None:
        """All item scores for ``history`` (item id -> weight), or None when nothing in it is known."""
        ...


@runtime_checkable
class ExplainsHistory(Protocol):
    """Explains an item scored from a folded-in history with the model's own evidence."""

    def explain_history(self, history: Mapping[str, float], item_id: str) -> list[Reason]: ...


@runtime_checkable
class RecommendsAnonymously(Protocol):
    """Serves users the graph has never seen (no history at all), and says why."""

    def anonymous_scores(self) -> np.ndarray:
        """Every item's score for someone we know nothing about (higher is better, > 0 to serve)."""
        ...

    def recommend_anonymous(self, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]: ...

    def explain_anonymous(self, item_id: str) -> list[Reason]: ...


@runtime_checkable
class Tunable(Protocol):
    """Has hyper-parameters worth searching on a validation cut (``recommenders.tuning``);
    checked on the class, ``issubclass(cls, Tunable)``."""

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """Config overrides drawn from ``trial`` for ``snapshot``."""
        ...

    @classmethod
    def search_starts(cls, snapshot: GraphSnapshot) -> list[dict[str, Any]]:
        """Trials to run right after the defaults (none unless a class knows good ones)."""
        ...


@runtime_checkable
class SimilarItems(Protocol):
    """Items like a given item, from the model's own fitted similarity (no scores for a user)."""

    def similar_items(self, item_id: str, k: int = 10) -> list[Recommendation]: ...
