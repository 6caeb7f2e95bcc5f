"""The read path (``recommenders.serving``): filters, hidden items, dislikes, new history, similar items."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext
from kgrec.recommenders.reason_paths import path_exists
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.own_items import OwnItems
from kgrec.recommenders.serving.query import Query, UserState
from kgrec.recommenders.serving.server import Server

MODELS = ("graph_walk", "itemcf", "hybrid", "popularity")


@pytest.fixture(scope="module")
def server(snapshot: GraphSnapshot) -> Server:
    fitted = {n: create(n, seed=3, **({"components": ("graph_walk", "itemcf", "popularity")} if n == "hybrid" else {}))
              for n in MODELS}
    for name, model in fitted.items():
        if name != "hybrid":
            model.fit(snapshot)
    fitted["hybrid"].fit(snapshot, FitContext(fitted={n: m for n, m in fitted.items() if n != "hybrid"}))
    return Server(snapshot, fitted, list(MODELS))


def tags_of(snapshot: GraphSnapshot, item: str) -> set[str]:
    i = snapshot.items.index[item]
    it = snapshot.item_tags
    return {snapshot.tags.ids[t] for t in it.indices[it.indptr[i]:it.indptr[i + 1]]}


def busy(snapshot: GraphSnapshot) -> str:
    return snapshot.users.ids[int(np.argmax(np.diff(snapshot.interactions.indptr)))]


@pytest.mark.parametrize("model", MODELS)
def test_tag_filters_hold_for_every_model(server: Server, snapshot: GraphSnapshot, model: str) -> None:
    user = busy(snapshot)
    counts = np.asarray((snapshot.item_tags > 0).sum(axis=0)).ravel()
    wanted = {snapshot.tags.ids[int(t)] for t in np.argsort(-counts)[:2]}
    only = server.recommend(Query(user, 10, model, tags=frozenset(wanted)))
    assert len(only) == 10 and all(tags_of(snapshot, r.item) & wanted for r in only)
    none = server.recommend(Query(user, 10, model, not_tags=frozenset(wanted)))
    assert len(none) == 10 and not any(tags_of(snapshot, r.item) & wanted for r in none)
    assert server.recommend(Query(user, 10, model, tags=frozenset({"no-such-tag"}))) == []


@pytest.mark.parametrize("model", MODELS)
def test_hidden_and_disliked_items_are_never_served(server: Server, snapshot: GraphSnapshot, model: str) -> None:
    user = busy(snapshot)
    top = [r.item for r in server.recommend(Query(user, 6, model))]
    state = UserState(disliked=frozenset(top[:2]), hidden=frozenset(top[2:4]))
    after = [r.item for r in server.recommend(Query(user, 6, model), state)]
    assert len(after) == 6 and not set(top[:4]) & set(after)
    assert after[:2] == top[4:6]  # the rest keep their order: filtered, not re-ranked
    anonymous = server.recommend(Query("stranger", 6, model), UserState(hidden=frozenset(top)))
    assert len(anonymous) == 6 and not set(top) & {r.item for r in anonymous}


def test_new_history_is_folded_in_and_excluded(server: Server, snapshot: GraphSnapshot) -> None:
    user = busy(snapshot)
    before = server.recommend(Query(user, 10, "itemcf"))
    history = {**server.bundle_history(user), before[0].item: 5.0, before[1].item: 5.0}
    after = server.recommend(Query(user, 10, "itemcf", explain=True), UserState(history=history))
    assert not {before[0].item, before[1].item} & {r.item for r in after}
    expected = server.models["itemcf"].score_history(history)
    for r in after:
        assert r.score == pytest.approx(expected[snapshot.items.index[r.item]])
        assert r.reasons and all(x.kind == "evidence" for x in r.reasons)


def test_a_dislike_lowers_similar_items(server: Server, snapshot: GraphSnapshot) -> None:
    user = busy(snapshot)
    first = server.recommend(Query(user, 1, "itemcf"))[0].item
    history = server.bundle_history(user)
    plain = server.models["itemcf"].score_history(history)
    state = UserState(history=history, disliked=frozenset({first}))
    after = server.recommend(Query(user, 30, "itemcf"), state)
    disliked = server.models["itemcf"].score_history({**history, first: -float(np.median(list(history.values())))})
    for r in after:
        assert r.score == pytest.approx(disliked[snapshot.items.index[r.item]])
    assert (disliked <= plain + 1e-12).all() and (disliked < plain - 1e-12).any()


def test_similar_items_respect_hidden_and_tags_and_explain_with_real_paths(server: Server,
                                                                          snapshot: GraphSnapshot) -> None:
    item = snapshot.items.ids[int(np.argmax(np.diff(sp_csc(snapshot).indptr)))]
    found = server.similar(item, 8, "itemcf", explain=True)
    assert len(found) == 8 and {r.source for r in found} <= {"itemcf", "cooccurrence"}
    assert found[0].source == "itemcf"
    itemcf = [r.item_id for r in server.models["itemcf"].similar_items(item, 8)]
    assert [r.item for r in found if r.source == "itemcf"] == itemcf[: len([r for r in found if r.source == "itemcf"])]
    for r in found:
        assert r.reasons and all(path_exists(snapshot, x) for x in r.reasons)
    hidden = frozenset(r.item for r in found[:3])
    again = server.similar(item, 8, "itemcf", hidden=hidden)
    assert len(again) == 8 and not hidden & {r.item for r in again}
    tag = sorted(tags_of(snapshot, item))[0]
    tagged = server.similar(item, 5, tags=[tag])
    assert tagged and all(tag in tags_of(snapshot, r.item) for r in tagged)


def test_own_items_never_fall_back(server: Server, snapshot: GraphSnapshot) -> None:
    user = busy(snapshot)
    own = OwnItems(server, "graph_walk").recommend(user, 5)
    assert [r.item_id for r in own] == [r.item_id for r in server.models["graph_walk"].recommend(user, 5)]
    assert OwnItems(server, "graph_walk").recommend("stranger", 5) == []
    with pytest.raises(ValueError, match="not in the bundle"):
        OwnItems(server, "als")


def sp_csc(snapshot: GraphSnapshot):  # the item with the largest audience has the most neighbours
    return snapshot.interactions.tocsc()
