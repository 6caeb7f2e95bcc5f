"""The ``kge`` recommender: PyKEEN embeddings, scored with numpy at serve time.

``fit`` trains a PyKEEN model on the snapshot's triples (``embeddings.train``); serving
scores (user, INTERACTED, item) for every item with the model's own interaction function
in numpy (``embeddings.scoring``), so a loaded model never imports torch. Users the model
never saw are folded in from their items and tags (the head vector that best explains
their edges, see ``Interaction.fold_in_target``); users with nothing known are left to the
fallback chain. Embedding scores are not additive, so every reason is labelled
``evidence``: the liked items nearest to the recommendation in embedding space, and the
shortest graph path from the user to the item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import numpy as np

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.pykeen_setup import TrainConfig
from kgrec.embeddings.triples import INTERACTED, USES_TAG, item_label, tag_label, user_label
from kgrec.graph.array_files import map_arrays
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import (
    ExplainsHistory,
    FitContext,
    FitCost,
    FoldsInHistory,
    HasNodeVectors,
    Reason,
    Recommendation,
    SimilarItems,
    StartsWarm,
    Tunable,
)
from kgrec.recommenders.config import ConfigError, ModelConfig, NonNegative
from kgrec.recommenders.models.scored import (
    ARRAYS_DIR,
    MODEL_FORMAT,
    ScoredRecommender,
    config_from_json,
    read_model_meta,
)
from kgrec.recommenders.ranking import top_k
from kgrec.recommenders.reason_paths import ITEM
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim, check_arrays

if TYPE_CHECKING:
    import optuna

ARTIFACT_DIR = "artifact"
EVIDENCE = "evidence"


@dataclass(frozen=True)
class KGEConfig(TrainConfig, ModelConfig):
    """The training options of ``embeddings.pykeen_setup.TrainConfig`` (one set of defaults: the
    best configuration of ``benchmarks/kge.py``'s grid on Last.fm 2K) plus how explanations are
    drawn. Both sets of rules apply: TrainConfig's choices and ModelConfig's types."""

    neighbours_explained: Annotated[int, NonNegative] = 2

    def __post_init__(self) -> None:
        ModelConfig.__post_init__(self)
        try:
            TrainConfig.__post_init__(self)
        except ValueError as exc:
            raise ConfigError(self.model_name or "kge", _option_in(str(exc)), str(exc)) from None

    def train_config(self) -> TrainConfig:
        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self) if f.name in names})


@register("kge", fit_cost=FitCost(nnz=200.0, fixed=5.0), expensive=True)
class KGE(ScoredRecommender, FoldsInHistory, ExplainsHistory, SimilarItems, HasNodeVectors, StartsWarm, Tunable):
    additive: ClassVar[bool] = False
    positive_only: ClassVar[bool] = False
    Config = KGEConfig
    config: KGEConfig

    artifact: KGEArtifact

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """The interaction model, its dimension, the step size and the shared negatives
        (``--tune-kge`` only: each trial trains embeddings, minutes on Last.fm 2K). Trials
        train without the link-prediction test cut; the tuner's validation cut judges them."""
        return {
            "model": trial.suggest_categorical("model", ["RotatE", "ComplEx", "DistMult"]),
            "dim": trial.suggest_categorical("dim", [32, 64, 128]),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True),
            "num_negatives": trial.suggest_categorical("num_negatives", [256, 1024, 4096]),
            "test_fraction": 0.0,
            "progress": False,
        }

    # -- fitting and attaching --------------------------------------------------------------
    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> KGE:
        """Train on ``snapshot``; with ``ctx.warm`` (``kgrec train --warm-start``) start from the
        old bundle's vectors when the guards allow (``recommenders.models.warm_fit``)."""
        self._start(snapshot)
        if ctx is None or ctx.warm is None:
            self.warm_record = None
            self._fit(snapshot)
            return self
        from kgrec.recommenders.models.warm_adapters import KGEWarm
        from kgrec.recommenders.models.warm_fit import warm_fit

        if not warm_fit(self, snapshot, ctx, KGEWarm(self, ctx.warm)):
            self._fit(snapshot)
        return self

    def warm_shape(self) -> dict[str, Any]:
        c = self.config
        return {"model": c.model, "dim": c.dim, "inverse": c.inverse, "drop": sorted(c.drop)}

    def _fit(self, snapshot: GraphSnapshot) -> None:
        from kgrec.embeddings.train import train

        self.attach(train(snapshot, self.config.train_config()), snapshot)

    def node_vectors(self) -> KGEArtifact:
        return self.artifact

    def attach(self, artifact: KGEArtifact, snapshot: GraphSnapshot,
               saved: Mapping[str, np.ndarray] | None = None) -> KGE:
        """Serve ``artifact`` over ``snapshot`` (which may be newer than the training one);
        ``saved``: the item vectors as ``save`` wrote them for this snapshot (mapped, not
        recomputed into each process)."""
        self.artifact = artifact
        self._start(snapshot)
        idx = artifact.entity_index
        self._user_rows = np.array([idx.get(user_label(u), -1) for u in snapshot.users.ids], dtype=np.int64)
        item_rows = np.array([idx.get(item_label(i), -1) for i in snapshot.items.ids], dtype=np.int64)
        self._item_known = item_rows >= 0
        self._tag_rows = np.array([idx.get(tag_label(t), -1) for t in snapshot.tags.ids], dtype=np.int64)
        self._r = artifact.relation(INTERACTED)
        self._r_tag = artifact.relation(USES_TAG) if USES_TAG in artifact.relation_index else None
        if saved is not None:
            self._items, self._items_unit = saved["items"], saved["items_unit"]
        else:
            self._items = artifact.entity_vectors[np.maximum(item_rows, 0)]
            real = artifact.real_view(self._items).astype(np.float64)
            norms = np.linalg.norm(real, axis=1)
            self._items_unit = real / np.where(norms > 0, norms, 1.0)[:, None]
        known_users = self._user_rows[self._user_rows >= 0]
        uv = artifact.entity_vectors[known_users] if len(known_users) else artifact.entity_vectors
        self._user_norm = float(np.median(np.sqrt((np.abs(uv) ** 2).sum(axis=1)))) if len(uv) else 1.0
        self._interaction = artifact.interaction
        return self

    # -- scoring ----------------------------------------------------------------------------
    def _user_vector(self, u: int) -> np.ndarray | None:
        row = self._user_rows[u]
        if row >= 0:
            return self.artifact.entity_vectors[row]
        snap = self._snap()
        items = snap.user_items(u)
        t = snap.user_tags
        tags = t.indices[t.indptr[u] : t.indptr[u + 1]]
        return self.fold_in(items, tags)

    def fold_in(self, items: np.ndarray, tags: np.ndarray | None = None) -> np.ndarray | None:
        """A head vector for a user the model never saw, from snapshot item (and tag) indices."""
        inter = self._interaction
        items = np.asarray(items, dtype=np.int64)
        items = items[self._item_known[items]] if len(items) else items
        targets = [inter.fold_in_target(self._r, self._items[items])] if len(items) else []
        if tags is not None and len(tags) and self._r_tag is not None:
            rows = self._tag_rows[np.asarray(tags, dtype=np.int64)]
            rows = rows[rows >= 0]
            if len(rows):
                targets.append(inter.fold_in_target(self._r_tag, self.artifact.entity_vectors[rows]))
        if not targets:
            return None
        v = np.concatenate(targets).mean(axis=0)
        if inter.translational:
            return v
        norm = float(np.sqrt((np.abs(v) ** 2).sum()))
        return v * (self._user_norm / norm) if norm > 0 else None

    def _score_vector(self, h: np.ndarray) -> np.ndarray:
        scores = self._interaction(h, self._r, self._items).astype(np.float64)
        scores[~self._item_known] = -np.inf
        return scores

    def _scores(self, u: int) -> np.ndarray | None:
        h = self._user_vector(u)
        return None if h is None else self._score_vector(h)

    # -- feedback after training (written since the bundle; see recommenders.live) -----------
    def _history_items(self, history: Mapping[str, float]) -> np.ndarray:
        snap = self._snap()
        return np.array(sorted(j for j in (snap.items.get(x) for x in history) if j is not None), dtype=np.int64)

    def score_history(self, history: Mapping[str, float]) -> np.ndarray | None:
        """Scores for a user given only the items they interacted with (folded in from the
        positively weighted ones: an embedding has no negative fold-in)."""
        h = self.fold_in(self._history_items({x: w for x, w in history.items() if w > 0}))
        return None if h is None else self._score_vector(h)

    def explain_history(self, history: Mapping[str, float], item_id: str) -> list[Reason]:
        """Evidence for an item given a folded-in history: the nearest history items (the
        recent interactions are not in the graph yet, so each path is the item alone)."""
        i = self._snap().items.get(item_id)
        items = self._history_items(history)
        if i is None or not len(items):
            return []
        return [
            self._paths.reason(ITEM, (self._paths.item(j),), sim, self._near_text(j, i, sim), kind=EVIDENCE)
            for j, sim in self._nearest(items, i)
        ]

    # -- similar items and explanations ----------------------------------------------------
    def similar_items(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """Items nearest to ``item_id`` by cosine of their embeddings."""
        snap = self._snap()
        i = snap.items.get(item_id)
        if i is None or not self._item_known[i] or k <= 0:
            return []
        sims = self._items_unit @ self._items_unit[i]
        sims[~self._item_known] = -np.inf
        sims[i] = -np.inf
        return [Recommendation(snap.items.ids[j], float(sims[j]), self.name)
                for j in top_k(sims, k, positive_only=False)]

    def _nearest(self, items: np.ndarray, i: int) -> list[tuple[int, float]]:
        items = items[self._item_known[items]]
        if not len(items) or not self._item_known[i]:
            return []
        sims = self._items_unit[items] @ self._items_unit[i]
        order = np.lexsort((items, -sims))[: self.config.neighbours_explained]
        return [(int(items[o]), float(sims[o])) for o in order]

    def _near_text(self, j: int, i: int, sim: float) -> str:
        snap = self._snap()
        return (f"You interacted with {snap.title(j)}, which lies close to {snap.title(i)} in the "
                f"{self.artifact.interaction.model} embedding space (cosine {sim:.2f}); supporting evidence, "
                "not the cause of the score")

    def _nearest_reasons(self, u: int, items: np.ndarray, i: int) -> list[Reason]:
        return [self._paths.own_item(u, j, sim, self._near_text(j, i, sim), kind=EVIDENCE)
                for j, sim in self._nearest(items, i)]

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        snap = self._snap()
        reasons = self._nearest_reasons(u, snap.user_items(u), i)
        path = self._shortest_path(u, i)
        return reasons + ([path] if path is not None else [])

    def _shortest_path(self, u: int, i: int) -> Reason | None:
        """The shortest user->item path in the graph: a friend who interacted with the item
        (2 hops), else one of your items sharing a tag with it or a co-listener (3 hops)."""
        snap = self._snap()
        p = self._paths
        f = snap.follows
        friends = f.indices[f.indptr[u] : f.indptr[u + 1]]
        audience = snap.interactions[:, i].nonzero()[0] if len(friends) else np.zeros(0, dtype=np.int64)
        both = np.intersect1d(friends, audience)
        if len(both):
            v = int(both[0])
            return p.friend(u, v, i, 0.0, f"You follow {p.user(v).name or p.user(v).id}, who interacted with "
                            f"{snap.title(i)} (a graph path; evidence, not the cause)", kind=EVIDENCE)
        mine = snap.user_items(u)
        near = [j for j, _ in self._nearest(mine, i)] + [int(j) for j in mine]
        it = snap.item_tags
        tags_i = set(it.indices[it.indptr[i] : it.indptr[i + 1]].tolist())
        for j in near:
            shared = sorted(tags_i.intersection(it.indices[it.indptr[j] : it.indptr[j + 1]].tolist()))
            if shared:
                t = shared[0]
                return p.shared_tag(u, j, t, i, 0.0, f"You interacted with {snap.title(j)}, which shares the tag "
                                    f"{snap.tag_names[t]} with {snap.title(i)} (a graph path; evidence, not the cause)",
                                    kind=EVIDENCE)
        if len(near):
            users_i = set(snap.interactions[:, i].nonzero()[0].tolist()) - {u}
            for j in near[:20]:
                co = sorted(users_i.intersection(snap.interactions[:, j].nonzero()[0].tolist()))
                if co:
                    v = co[0]
                    return p.co_interaction(u, j, v, i, 0.0, f"{p.user(v).name or p.user(v).id} interacted with both "
                                            f"{snap.title(j)} and {snap.title(i)} (a graph path; evidence, not the "
                                            "cause)", kind=EVIDENCE)
        return None

    # -- persistence ------------------------------------------------------------------------
    #: Each snapshot item's vector and its unit-length real view (what scoring and explaining
    #: read), saved so that a load maps them; the trained vectors live in the artifact directory.
    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"items": ("items", None), "items_unit": ("items", None)}

    def _state(self) -> dict[str, np.ndarray]:
        return {"items": self._items, "items_unit": self._items_unit}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Nothing here: ``load`` hands the saved arrays to ``attach``."""

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        self.artifact.save(Path(directory) / ARTIFACT_DIR)

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot, strict: bool = True) -> KGE:
        """Load without torch. Like every recommender it refuses a snapshot other than the
        one it was fitted on; with ``strict=False`` it serves a newer snapshot instead,
        matching vectors by entity label and folding in users the model never saw."""
        d = Path(directory)
        saved = None
        if strict:
            meta = read_model_meta(d, cls.name, snapshot)
            saved = map_arrays(d / ARRAYS_DIR)
            check_arrays(saved, cls.ARRAYS, snapshot, d / ARRAYS_DIR, cls.NAN_OK)
        else:
            path = d / "model.json"
            if not path.is_file():
                raise FileNotFoundError(f"{d}: no model.json; not a saved model")
            meta = json.loads(path.read_text(encoding="utf-8"))
            if meta.get("format") != MODEL_FORMAT or meta.get("name") != cls.name:
                raise ValueError(f"{d}: not a saved {cls.name} model ({meta.get('format')}, {meta.get('name')})")
        model = cls(config_from_json(cls.Config, meta["config"]))
        return model.attach(KGEArtifact.load(d / ARTIFACT_DIR), snapshot, saved)


def _option_in(message: str) -> str:
    """The option a TrainConfig message is about (its messages start with what is wrong)."""
    for option in ("model", "training_loop", "negative_sampler", "engine", "head_fraction", "workers", "dim"):
        if option.replace("_", " ") in message or option in message:
            return option
    return "config"
