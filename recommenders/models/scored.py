"""The shared machinery of recommenders that score every item for a user.

A ``ScoredRecommender`` subclass says how to fit (``_fit``), how to score one user over all
items (``_scores``), how to explain one (user, item) pair (``_explain``) and which arrays
hold its fitted state (``_state`` / ``_restore``). This class does the rest the same way for
all of them: id lookups, filtering seen and excluded items, a deterministic top-k with
``numpy.argpartition``, and the save/load format.

Save/load contract (every recommender, including ones added later such as ``kge``):
``save(dir)`` writes ``model.json`` — ``{"format", "name", "config", "fingerprint"}`` — and
``arrays.npz`` (uncompressed, each array mapped in place, ``graph.array_files``; no pickle);
``load(dir, snapshot)`` refuses a snapshot whose fingerprint differs from the one the model
was fitted on, rebuilds the ``Config`` from JSON and restores the arrays without refitting.
Loaded arrays are read-only maps of the files, shared by every process that loads them: a
model keeps them as they are (no in-place change, no up-cast copy at load; what it needs in
another form it computes at fit and saves in the form it serves).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from kgrec.graph.array_files import map_arrays, save_arrays
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import (
    FitContext,
    FoldsInHistory,
    Reason,
    Recommendation,
    Recommender,
    ScoresAllItems,
    TopReasons,
    top_reasons,
)
from kgrec.recommenders.config import ModelConfig
from kgrec.recommenders.ranking import top_allowed
from kgrec.recommenders.reason_paths import PathBuilder
from kgrec.recommenders.recent_user import RecentUser
from kgrec.recommenders.saved_arrays import Dim, check_arrays

#: 2: arrays in an uncompressed, mapped ``arrays.npz`` (1: the same name, compressed).
MODEL_FORMAT = 2
#: Where a model's arrays live inside its directory.
ARRAYS_DIR = "arrays"
T = TypeVar("T")


class ScoredRecommender(Recommender, ScoresAllItems):
    """Recommend by scoring all items of one user; see the module docstring."""

    #: The arrays ``_state`` saves, by name, with their dimensions in snapshot counts ("users",
    #: "items", "tags") or None for any length; a sparse matrix is one name (``csr_state``).
    #: ``load`` refuses arrays that do not match (``recommenders.integrity.check_arrays``).
    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {}
    #: Arrays that may hold NaN or infinities; every other float array must be finite.
    NAN_OK: ClassVar[frozenset[str]] = frozenset()
    #: Only items with a score above zero are recommended (no evidence, no item): the
    #: fallback chain fills the rest. Factor models set this to False.
    positive_only: ClassVar[bool] = True

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.snapshot: GraphSnapshot | None = None

    # -- what subclasses provide --------------------------------------------------------------
    def _prepare(self, snapshot: GraphSnapshot) -> None:
        """Derive cheap views of the snapshot (both after fit and after load)."""

    @abstractmethod
    def _fit(self, snapshot: GraphSnapshot) -> None: ...

    @abstractmethod
    def _scores(self, u: int) -> np.ndarray | None:
        """Scores of every item for user index ``u`` (float64), or None when cold."""

    @abstractmethod
    def _explain(self, u: int, i: int, score: float) -> list[Reason]: ...

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        """The ``limit`` strongest reasons and the rest's count and sum. Recommenders with many
        paths override this to rank cheap contributions first and build only ``limit`` Reasons."""
        return top_reasons(self._explain(u, i, score), limit)

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None: ...

    # -- the protocol -----------------------------------------------------------------------
    def fit(self, snapshot: GraphSnapshot, ctx: FitContext | None = None) -> ScoredRecommender:
        self._start(snapshot)
        self._fit(snapshot)
        return self

    def _start(self, snapshot: GraphSnapshot) -> None:
        """What fit and load share: the snapshot, fresh per-user caches, the derived views."""
        self.snapshot = snapshot
        self._recent_scores: RecentUser[np.ndarray | None] = RecentUser()
        self._recent_work: RecentUser[Any] = RecentUser()
        self._paths = PathBuilder(snapshot)
        self._prepare(snapshot)

    def _snap(self) -> GraphSnapshot:
        if self.snapshot is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(snapshot) or load(dir, snapshot) first")
        return self.snapshot

    def _user_scores(self, u: int) -> np.ndarray | None:
        """``_scores(u)`` as a read-only view, kept for the last user: serving scores a user and
        then explains the list it served (the hybrid scores every component first), so the
        second pass reuses the first's scores instead of scoring again."""
        return self._recent_scores.get(u, lambda: _read_only(self._scores(u)))

    def _per_user(self, u: int, compute: Callable[[], T]) -> T:
        """Per-user explanation work, kept for the last user (a served list explains k items of
        one user in a row); every model keeps it here, so a refit or load drops it."""
        return self._recent_work.get(u, compute)

    def score_user(self, user_id: str) -> np.ndarray | None:
        """All item scores for a user (None when unknown or cold), read-only; evaluation uses this."""
        u = self._snap().users.get(user_id)
        return None if u is None else self._user_scores(u)

    def recommend(self, user_id: str, k: int = 10, exclude: Collection[str] | None = None) -> list[Recommendation]:
        snap = self._snap()
        u = snap.users.get(user_id)
        if u is None or k <= 0:
            return []
        scores = self._user_scores(u)
        if scores is None:
            return []
        allowed = np.ones(len(scores), dtype=bool)
        allowed[snap.user_items(u)] = False
        if exclude:
            allowed[[j for j in (snap.items.get(x) for x in exclude) if j is not None]] = False
        top = top_allowed(scores, allowed, k, self.positive_only)
        ids = snap.items.ids
        return [Recommendation(ids[j], float(scores[j]), self.name) for j in top]

    def explain(self, user_id: str, item_id: str, limit: int | None = None) -> list[Reason]:
        """All reasons, strongest first (their contributions sum to the score for additive
        recommenders); with ``limit``, only the strongest ``limit`` of them."""
        if limit is not None:
            return list(self.explain_top(user_id, item_id, limit).reasons)
        snap = self._snap()
        u, i = snap.users.get(user_id), snap.items.get(item_id)
        if u is None or i is None:
            return []
        scores = self._user_scores(u)
        if scores is None or not np.isfinite(scores[i]) or (self.positive_only and scores[i] <= 0):
            return []
        reasons = self._explain(u, i, float(scores[i]))
        return sorted(reasons, key=lambda r: -r.contribution)

    def explain_top(self, user_id: str, item_id: str, limit: int | None = None) -> TopReasons:
        return self.explain_many(user_id, [item_id], limit)[0]

    def explain_many(self, user_id: str, item_ids: Sequence[str], limit: int | None = None) -> list[TopReasons]:
        """``explain_top`` for several items of one user, scoring the user once."""
        snap = self._snap()
        u = snap.users.get(user_id)
        scores = self._user_scores(u) if u is not None else None
        out = []
        for item_id in item_ids:
            i = snap.items.get(item_id)
            if (u is None or scores is None or i is None or not np.isfinite(scores[i])
                    or (self.positive_only and scores[i] <= 0)):
                out.append(TopReasons())
            else:
                out.append(self._explain_top(u, i, float(scores[i]), limit))
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        snap = self._snap()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": MODEL_FORMAT, "name": self.name, "config": asdict(self.config),
                "fingerprint": snap.fingerprint}
        save_arrays(d / ARRAYS_DIR, self._state())
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, snapshot: GraphSnapshot) -> ScoredRecommender:
        d = Path(directory)
        meta = read_model_meta(d, cls.name, snapshot)
        model = cls(config_from_json(cls.Config, meta["config"]))
        model._start(snapshot)
        arrays = map_arrays(d / ARRAYS_DIR)
        check_arrays(arrays, cls.ARRAYS, snapshot, d / ARRAYS_DIR, cls.NAN_OK)
        model._restore(arrays)
        return model


class HistoryScored(FoldsInHistory):
    """Mixin for a ``ScoredRecommender`` that can score a history newer than its fit (feedback
    posted since the bundle): it provides ``_history_scores`` from item indices and weights."""

    snapshot: GraphSnapshot | None

    @abstractmethod
    def _history_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """Scores of every item for a history given as item indices and raw weights (a
        negative weight is a dislike), without refitting; None when there is nothing to say."""

    def score_history(self, history: Mapping[str, float]) -> np.ndarray | None:
        """Items unknown to the snapshot are ignored; None when none is known."""
        snap = self.snapshot
        if snap is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        known = sorted((j, float(w)) for j, w in ((snap.items.get(x), w) for x, w in history.items()) if j is not None)
        if not known:
            return None
        items = np.fromiter((j for j, _ in known), dtype=np.int64, count=len(known))
        weights = np.fromiter((w for _, w in known), dtype=np.float64, count=len(known))
        scores = self._history_scores(items, weights)
        return None if scores is None else np.asarray(scores, dtype=np.float64)


def _read_only(scores: np.ndarray | None) -> np.ndarray | None:
    if scores is None:
        return None
    view = np.asarray(scores, dtype=np.float64).view()
    view.setflags(write=False)
    return view


def read_model_meta(d: Path, name: str, snapshot: GraphSnapshot) -> dict[str, Any]:
    """Read ``model.json`` and check it belongs to this recommender and this snapshot."""
    path = d / "model.json"
    if not path.is_file():
        raise FileNotFoundError(f"{d}: no model.json; not a saved model")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{d}: model format {meta.get('format')} is not {MODEL_FORMAT} "
                         "(saved by an older kgrec: retrain with kgrec train)")
    if meta.get("name") != name:
        raise ValueError(f"{d}: holds model {meta.get('name')!r}, not {name!r}")
    if meta.get("fingerprint") != snapshot.fingerprint:
        raise ValueError(
            f"{d}: fitted on snapshot {meta.get('fingerprint')}, but the snapshot given is {snapshot.fingerprint}"
        )
    return meta


def config_from_json(config_cls: type[ModelConfig], values: dict[str, Any]) -> Any:
    """Rebuild a saved Config from JSON (validated; unknown keys refused, lists back to tuples)."""
    return config_cls.build(**values)
