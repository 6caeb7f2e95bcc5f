"""The per-block work of ``kgrec recommend``, ``writeback`` and ``evaluate`` (see ``recommenders.batch``).

Each task is a module-level function ``(context, users, options, states) -> one result per
user`` so any engine can run it anywhere: Ray ships it by reference (module and name).
Options are small frozen dataclasses. ``states`` are the users' ``UserState`` (what the store
knows beyond the bundle), read in the driver and shipped with the block, or None (the bundle
alone). Serving tasks run on a ``recommenders.serving.Server`` — the one read path of the API
and ``kgrec recommend`` — so a batch list is exactly what a request for that user answers.
Payload loaders (``load_server``, ``load_models``) are here too: they are what a worker calls
once on the directory it was given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kgrec.graph.recommendation_writeback import RecRow, recommendation_rows
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommender
from kgrec.recommenders.registry import get
from kgrec.recommenders.serving.own_items import OwnItems
from kgrec.recommenders.serving.query import BUNDLE_ONLY, Query, UserState
from kgrec.recommenders.serving.reason_json import Served
from kgrec.recommenders.serving.server import Server

MODELS_FILE = "models.json"
#: States of a block: one per user, or None for the bundle alone.
States = Sequence[UserState] | None


def _states(users: Sequence[str], states: States) -> Sequence[UserState]:
    return states if states is not None else [BUNDLE_ONLY] * len(users)


@dataclass(frozen=True)
class RecommendOptions:
    """The request every user of the batch makes: ``query`` with its user left blank."""

    query: Query


def recommend_block(server: Server, users: Sequence[str], options: RecommendOptions,
                    states: States = None) -> list[tuple[list[Served], bool]]:
    """What the API answers each user (``Server.recommend`` with the user's store state), and
    whether the user is known (the response's ``known_user``)."""
    out = []
    for user, state in zip(users, _states(users, states), strict=True):
        served = server.recommend(replace(options.query, user=user), state)
        out.append((served, user in server.snapshot.users or state.known or bool(state.history)))
    return out


@dataclass(frozen=True)
class ModelOptions:
    model: str
    k: int = 10


def own_rows_block(server: Server, users: Sequence[str], options: ModelOptions,
                   states: States = None) -> list[list[RecRow]]:
    """Write-back rows ``(user, item, score, rank)``: the named model's own top k through the
    read path (no fallback; the store's dislikes, hidden items and new history apply)."""
    return [list(recommendation_rows(OwnItems(server, options.model, _always(state)), [user], options.k))
            for user, state in zip(users, _states(users, states), strict=True)]


def _always(state: UserState) -> Callable[[str], UserState]:
    """The state lookup of one user's ``OwnItems``: ``state``, whoever is asked about."""
    return lambda _: state


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


def ranked_block(models: dict[str, Recommender], users: Sequence[str], options: ModelOptions,
                 states: States = None) -> list[list[str]]:
    """Evaluation: the item ids of one model's top k for each user (a model fitted on a split's
    training part is scored as it is: no store, no fallback)."""
    model = models[options.model]
    return [[r.item_id for r in model.recommend(user, k=options.k)] for user in users]
