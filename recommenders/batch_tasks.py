"""The per-block work of ``kgrec recommend``, ``writeback`` and ``evaluate`` (see ``recommenders.batch``).

Each task is a module-level function ``(context, users, options) -> one result per user``
so any engine can run it anywhere: Ray ships it by reference (module and name). Options are
small frozen dataclasses. Payload loaders (``load_bundle``, ``load_models``) are here too:
they are what a worker calls once on the directory it was given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from graph.snapshot import GraphSnapshot
from recommenders.base import Reason, Recommendation, Recommender
from recommenders.bundle import Bundle
from recommenders.registry import get

#: One user's list: (rank, recommendation, reasons — empty unless asked for).
UserRows = list[tuple[int, Recommendation, list[Reason]]]
MODELS_FILE = "models.json"


@dataclass(frozen=True)
class RecommendOptions:
    k: int = 10
    model: str | None = None
    explain: bool = False
    exclude: tuple[str, ...] = ()


def recommend_block(bundle: Bundle, users: Sequence[str], options: RecommendOptions) -> list[UserRows]:
    """What ``kgrec recommend`` serves each user: ``--model`` (or the bundle's chain) with the
    fallback chain's fill-in, and each item's reasons when asked for."""
    chain = bundle.chain_for(options.model)
    exclude = set(options.exclude)
    out: list[UserRows] = []
    for user in users:
        recs = chain.recommend(user, k=options.k, exclude=exclude)
        out.append([(rank, r, chain.explain(user, r.item_id, source=r.source) if options.explain else [])
                    for rank, r in enumerate(recs, 1)])
    return out


@dataclass(frozen=True)
class ModelOptions:
    model: str
    k: int = 10


def model_rows_block(bundle: Bundle, users: Sequence[str], options: ModelOptions) -> list[list[tuple]]:
    """Write-back rows ``(user, item, score, rank)``: the named model's own top k, no fallback."""
    from graph.writeback import recommendation_rows

    model = bundle.models[options.model]
    return [list(recommendation_rows(model, [user], options.k)) for user in users]


def pack_models(directory: Path, snapshot: GraphSnapshot, models: dict[str, Recommender]) -> Path:
    """Fitted models and the snapshot they were fitted on, saved for ``load_models`` (evaluation
    ships the models of a split this way; they are not a bundle: no fallback chain)."""
    snapshot.save(directory / "snapshot")
    for name, model in models.items():
        model.save(directory / "models" / name)
    (directory / MODELS_FILE).write_text(json.dumps(list(models)), encoding="utf-8")
    return directory


def load_models(directory: Path) -> dict[str, Recommender]:
    snapshot = GraphSnapshot.load(directory / "snapshot")
    names = json.loads((directory / MODELS_FILE).read_text(encoding="utf-8"))
    return {name: get(name).load(directory / "models" / name, snapshot) for name in names}


def ranked_block(models: dict[str, Recommender], users: Sequence[str], options: ModelOptions) -> list[list[str]]:
    """Evaluation: the item ids of one model's top k for each user."""
    model = models[options.model]
    return [[r.item_id for r in model.recommend(user, k=options.k)] for user in users]
