"""The Recommender contract and the types every recommender returns.

A recommender reads only a ``GraphSnapshot``; it never talks to a store. An unknown or
cold user gets an empty list, never an exception: the fallback chain fills the gap and
``source`` says which recommender produced each item.

The contract is explicit, so adding a model means writing its module (and its line in the
contract tests), nothing else: the class carries its typed ``Config``, declares its abilities
by inheriting them (``ScoresAllItems``, ``FoldsInHistory``, …, checked with ``isinstance``),
says what tuning and default training need and registers itself, in one line:
``@register("itemcf", fit_cost=FitCost(...), default_rank=3, hybrid_rank=2)``
(``recommenders.registry.register``). Every model fits
with one signature, ``fit(snapshot, ctx)``; ``FitContext`` carries what a model built on
others (the hybrid) may reuse.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kgrec.graph.schema import Label, Rel
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.config import ModelConfig

if TYPE_CHECKING:
    import numpy as np
    import optuna

    from kgrec.embeddings.artifact import KGEArtifact


@dataclass(frozen=True)
class PathNode:
    label: Label
    id: str
    name: str | None = None


class Derived(StrEnum):
    """Relationships a reason may walk that the graph does not store: its Cypher computes them
    from node properties. ``NEAR``: between two located items, the distance of their
    ``Item.location`` points (``point.distance``), which the reason's text names."""

    NEAR = "NEAR"


@dataclass(frozen=True)
class PathRel:
    """A relationship on a path; ``forward`` is False when walked against its direction."""

    type: Rel | Derived
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


@dataclass(frozen=True)
class FitCost:
    """Predicted seconds of one fit per unit of each size of the graph on the reference machine
    (2 CPU cores): ``pairs`` per 10⁷ co-occurring item pairs, ``nnz`` per 10⁵ interactions,
    ``dense`` per (10⁴ modelled items)³, ``follows`` per 10⁴ trust edges, plus ``fixed``.
    The tuner turns its budget into trial counts with it (``recommenders.tuning.trial_cost``)."""

    pairs: float = 0.0
    nnz: float = 0.0
    dense: float = 0.0
    follows: float = 0.0
    fixed: float = 0.0


@dataclass(frozen=True)
class WarmStart:
    """An old bundle to start learned models from (``kgrec train --warm-start``): its fitted models
    (over its own ``snapshot``), its identity, its manifest's record per model (``history``) and
    the guards (``recommenders.models.warm_fit``, whose docstring says what each option does).
    A model that ``StartsWarm`` takes its old self from ``old(name)``."""

    source: str
    digest: str
    fingerprint: str
    snapshot: GraphSnapshot
    models: Mapping[str, Recommender] = field(default_factory=dict)
    history: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_new: float = 0.2
    max_chain: int = 5
    epoch_share: float = 0.25
    patience: int = 1
    max_users: int = 2000
    across: bool = False
    tag_names: bool = False
    check_cold: bool = False
    tolerance: float = 0.01
    #: Work the models of one run share (the validation cut); not part of the identity.
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def old(self, name: str) -> Recommender | None:
        """The old bundle's fitted ``name``, or None when it has none."""
        return self.models.get(name)


@dataclass(frozen=True)
class FitContext:
    """What a fit may reuse instead of recomputing: models already fitted on the same snapshot
    (``fitted``), models the tuner fitted on its validation cut (``cut_fitted``) and an old
    bundle to start from (``warm``). Models that stand alone ignore the first two; a model built
    on others (``composes``) takes its parts from them; a model that ``StartsWarm`` uses ``warm``."""

    fitted: Mapping[str, Recommender] = field(default_factory=dict)
    cut_fitted: Mapping[str, Recommender] = field(default_factory=dict)
    warm: WarmStart | None = None


class Recommender(ABC):
    """fit(snapshot, ctx) -> recommend(user, k, exclude) / explain(user, item).

    Hyperparameters live in the class's ``Config`` (a frozen, validated ``ModelConfig``) given
    to the constructor. ``save``/``load`` write arrays (``.npz``) and JSON, never pickle.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]
    #: Whether reasons decompose the score (their contributions add up to it).
    additive: ClassVar[bool] = True
    #: Predicted fit cost (``register`` requires it, so no model silently gets a generic cost).
    fit_cost: ClassVar[FitCost]
    #: Tuned only when asked (``kgrec train --tune-kge``): each trial takes minutes.
    expensive: ClassVar[bool] = False
    #: Position in ``kgrec train``'s default models (the fallback order); None: not a default.
    default_rank: ClassVar[int | None] = None
    #: Position among the hybrid's default components; None: not a default component.
    hybrid_rank: ClassVar[int | None] = None
    #: Built from other models (fitted after them, from ``FitContext``): the hybrid.
    composes: ClassVar[bool] = False
    #: Serves lists. False for a model that only predicts ratings (``PredictsRatings``): its
    #: ``recommend`` and ``explain`` answer nothing, a server leaves it out of every list's chain,
    #: and evaluation scores only its rating error.
    recommends: ClassVar[bool] = True
    #: This model's options (an instance of ``Config``).
    config: ModelConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else self.Config()
        self.config = base.replace(**overrides) if overrides else base

    @classmethod
    def applies_to(cls, snapshot: GraphSnapshot) -> bool:
        """Whether this model has anything to learn from ``snapshot`` (a location model needs
        coordinates, a rating model ratings). Default training and the hybrid leave out a model
        that does not apply; naming it explicitly still fits it."""
        return True

    @classmethod
    def members(cls, config: ModelConfig) -> tuple[str, ...]:
        """The models this one is built from (tuned and fitted with it): none unless ``composes``."""
        return ()

    @classmethod
    def with_member_configs(cls, settings: Mapping[str, Any], chosen: Mapping[str, Mapping[str, Any]]
                            ) -> dict[str, Any]:
        """This model's settings once its members' options are chosen (``chosen``: options per
        member); a composed model passes them on, unless the user set them."""
        return dict(settings)

    def manifest_entry(self) -> dict[str, Any] | None:
        """What ``kgrec train`` records about this fitted model in the bundle's manifest (under
        its name), e.g. the hybrid's validation choice; None records nothing."""
        return None

    @abstractmethod
    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> Recommender: ...

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

    @abstractmethod
    def save(self, directory: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> Recommender: ...


# -- optional abilities: a class declares one by inheriting it (checked with isinstance) --------
class ScoresAllItems(ABC):
    """Scores every item of the snapshot for a known user, so a server can filter (tags, hidden
    items, dislikes) on the whole vector instead of asking for ever longer lists."""

    #: Only items scored above zero are recommended (no evidence, no item); factor models: False.
    positive_only: ClassVar[bool] = True

    @abstractmethod
    def score_user(self, user_id: str) -> np.ndarray | None:
        """All item scores (read-only), or None when the user is unknown or cold."""


class FoldsInHistory(ABC):
    """Scores a history newer than the fit (feedback posted since the bundle) without refitting.
    Weights are the raw interaction weights; a negative weight is negative evidence (a dislike)."""

    positive_only: ClassVar[bool] = True

    @abstractmethod
    def score_history(self, history: Mapping[str, float]) -> np.ndarray | None:
        """All item scores for ``history`` (item id -> weight), or None when nothing in it is known."""


class ExplainsHistory(ABC):
    """Explains an item scored from a folded-in history with the model's own evidence."""

    @abstractmethod
    def explain_history(self, history: Mapping[str, float], item_id: str) -> list[Reason]: ...


class RecommendsAnonymously(ABC):
    """Serves users the graph has never seen (no history at all), and says why."""

    @abstractmethod
    def anonymous_scores(self) -> np.ndarray:
        """Every item's score for someone we know nothing about (higher is better, > 0 to serve)."""

    @abstractmethod
    def recommend_anonymous(self, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]: ...

    @abstractmethod
    def explain_anonymous(self, item_id: str) -> list[Reason]: ...


class ScoresFromPlace(ABC):
    """Scores items for a user who is at a given place now (the read path's ``at=LAT,LON``):
    geography is measured from there instead of from the user's usual places. A user the
    model does not know is scored from the place alone."""

    #: Only items scored above zero are recommended; False: every finite score may be.
    positive_only: ClassVar[bool] = True

    @abstractmethod
    def score_from_place(self, user_id: str, lat: float, lon: float) -> np.ndarray | None:
        """All item scores (−inf: not proposed), or None when there is nothing to say."""


class ScoresProfiles(ABC):
    """Scores items from who a user is (the ids of the Attribute nodes they link to) and whatever
    history they have, for any user, known to the fit or not: a newcomer known only by the
    attributes written with ``POST /v1/users`` is scored on the next request."""

    positive_only: ClassVar[bool] = True

    @abstractmethod
    def score_profile(self, attributes: Collection[str], history: Mapping[str, float] | None) -> np.ndarray | None:
        """All item scores for a user with ``attributes`` (unknown ids ignored) and ``history``
        (item id -> weight; negative weights are dislikes), or None when nothing in them is known."""

    @abstractmethod
    def explain_profile(self, user_id: str, attributes: Collection[str], history: Mapping[str, float] | None,
                        item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        """``explain_many`` for a user scored by ``score_profile`` (paths start at ``user_id``)."""


class Tunable(ABC):
    """Has hyper-parameters worth searching on a validation cut (``recommenders.tuning``);
    checked on the class, ``issubclass(cls, Tunable)``."""

    @classmethod
    @abstractmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """Config overrides drawn from ``trial`` for ``snapshot``."""

    @classmethod
    def search_starts(cls, snapshot: GraphSnapshot) -> list[dict[str, Any]]:
        """Trials to run right after the defaults (none unless a class knows good ones)."""
        return []


class PredictsRatings(ABC):
    """Predicts how a user would rate an item, on the scale of the graph's ratings."""

    @abstractmethod
    def predict_ratings(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """One predicted rating per (user, item) pair, clipped to the data's scale; a user or
        item the model does not know gets its baseline part, never NaN."""

    @property
    def validation_rmse(self) -> float | None:
        """Its RMSE on a holdout of the graph's ratings, measured in fit (None: not measured)."""
        return None


class StartsWarm(ABC):
    """Starts its fit from its old fitted self in ``FitContext.warm`` (``kgrec train
    --warm-start``) for the users, items and relations both graphs share, new ones initialised
    from their neighbours; trains cold when a guard says so. ``warm_record`` is what the last fit
    did (None: no warm start was asked), written to the bundle's manifest."""

    warm_record: dict[str, Any] | None = None

    @abstractmethod
    def warm_shape(self) -> dict[str, Any]:
        """The settings that fix the shapes of its parameters: a warm start needs them unchanged."""


class HasNodeVectors(ABC):
    """Holds one learned vector per graph node, which ``kgrec writeback --embeddings`` writes into
    Neo4j as node properties with a vector index."""

    @abstractmethod
    def node_vectors(self) -> KGEArtifact: ...


class SimilarItems(ABC):
    """Items like a given item, from the model's own fitted similarity (no scores for a user)."""

    @abstractmethod
    def similar_items(self, item_id: str, k: int = 10) -> list[Recommendation]: ...
