"""Feedback folded into the walk and neighbourhood recommenders without retraining.

``score_history`` must score a history exactly as ``score_user`` scores the same history at
fit time (item-CF is a pure function of the history; the walk too, minus the friends'
paths), a dislike must push its neighbours down, and through the API a user's new
interactions must steer what they get.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FoldsInHistory
from kgrec.recommenders.registry import create
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def bundle_dir(snapshot, tmp_path_factory):
    return train_bundle(snapshot, tmp_path_factory.mktemp("foldin") / "bundle")


@pytest.fixture()
def client(bundle_dir, synthetic, tmp_path):
    store = fill_store(synthetic.records, tmp_path / "store")
    return create_app(Settings(bundle=str(bundle_dir), store=store, api_key=API_KEY),
                      server=fresh_server(bundle_dir)).test_client()


def test_itemcf_fold_in_equals_fit_time_scoring(bundle_dir, snapshot):
    server = fresh_server(bundle_dir)
    itemcf = server.models["itemcf"]
    assert isinstance(itemcf, FoldsInHistory)
    for user in snapshot.users.ids[:25]:
        folded = itemcf.score_history(server.bundle_history(user))
        np.testing.assert_allclose(folded, itemcf.score_user(user), rtol=1e-9)


def test_graph_walk_fold_in_equals_fit_time_scoring_without_friends(snapshot):
    """On a graph without follows the walk is a pure function of the history, as folded in."""
    lonely = GraphSnapshot(**{**snapshot.__dict__, "follows": sp.csr_matrix(snapshot.follows.shape)})
    walk = create("graph_walk").fit(lonely)
    assert isinstance(walk, FoldsInHistory)
    for u, user in enumerate(lonely.users.ids[:10]):
        history = {lonely.items.ids[j]: float(w) for j, w in zip(lonely.user_items(u), lonely.interactions[u].data,
                                                                 strict=True)}
        np.testing.assert_allclose(walk.score_history(history), walk.score_user(user), rtol=1e-9)


@pytest.mark.parametrize("model", ["graph_walk", "itemcf"])
def test_a_dislike_is_negative_evidence(bundle_dir, snapshot, model):
    """Folding in a dislike lowers exactly the items its row of the model reaches, and only them."""
    rec = fresh_server(bundle_dir).models[model]
    history = {snapshot.items.ids[j]: 1.0 for j in snapshot.user_items(5)}
    disliked = next(i for i in snapshot.items.ids if i not in history)
    base = rec.score_history(history)
    with_dislike = rec.score_history({**history, disliked: -1.0})
    lowered = with_dislike < base - 1e-12
    assert lowered.any() and not (with_dislike > base + 1e-12).any()


@pytest.mark.parametrize("model", ["graph_walk", "itemcf"])
def test_new_users_feedback_steers_the_walk_and_neighbourhood(client, synthetic, snapshot, model):
    """A user nobody has seen posts five items of one planted community; the model (not the
    popularity fallback) answers, mostly with that community's items."""
    truth = synthetic.truth
    community = 1
    theirs = [i for i in snapshot.items.ids if truth.item_community[i] == community]
    audience = snapshot.interactions.getnnz(axis=0)
    liked = sorted(theirs, key=lambda i: -audience[snapshot.items.index[i]])[:5]
    before = client.get(f"/v1/users/walk-in/recommendations?k=10&model={model}").get_json()
    assert {r["source"] for r in before["recommendations"]} == {"popularity"}
    resp = client.post("/v1/interactions", json=[{"user": "walk-in", "item": i} for i in liked], headers=AUTH)
    assert resp.status_code == 201
    after = client.get(f"/v1/users/walk-in/recommendations?k=10&model={model}&explain=true").get_json()
    recs = after["recommendations"]
    assert len(recs) == 10 and not set(liked) & {r["item"] for r in recs}
    mine = [r for r in recs if r["source"] == model]
    assert len(mine) >= 5
    share = sum(truth.item_community[r["item"]] == community for r in mine) / len(mine)
    assert share >= 0.6, (share, mine)
    for r in mine:
        assert r["reasons"] and all(x["kind"] == "evidence" for x in r["reasons"])


def test_known_users_feedback_changes_their_walk(client, snapshot):
    user = snapshot.users.ids[3]
    before = [r["item"] for r in client.get(f"/v1/users/{user}/recommendations?k=10").get_json()["recommendations"]]
    posted = before[:3]
    client.post("/v1/interactions", json=[{"user": user, "item": i, "weight": 10} for i in posted], headers=AUTH)
    after = client.get(f"/v1/users/{user}/recommendations?k=10").get_json()["recommendations"]
    assert not set(posted) & {r["item"] for r in after}
    unchanged = [i for i in before if i not in posted]  # what excluding them alone would give first
    assert [r["item"] for r in after][: len(unchanged)] != unchanged
    assert client.get("/v1/models").get_json()["models"][0]["folds_in_feedback"] is True
