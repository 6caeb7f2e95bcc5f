"""Feedback folded into the walk and neighbourhood recommenders without retraining.

``recommend_from_history`` must score a history exactly as ``recommend`` scores the same
history at fit time (item-CF is a pure function of the history; the walk too, minus the
friends' paths), and through the API a user's new interactions must steer what they get.
"""

from __future__ import annotations

import pytest

from api.app import create_app
from api.engine import folds_in
from api.settings import Settings
from tests.api_fixtures import API_KEY, fill_store, fresh_engine, train_bundle

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def bundle_dir(snapshot, tmp_path_factory):
    return train_bundle(snapshot, tmp_path_factory.mktemp("foldin") / "bundle")


@pytest.fixture()
def client(bundle_dir, synthetic, tmp_path):
    store = fill_store(synthetic.records, tmp_path / "store")
    return create_app(Settings(bundle=str(bundle_dir), store=store, api_key=API_KEY),
                      engine=fresh_engine(bundle_dir)).test_client()


def test_itemcf_fold_in_equals_fit_time_scoring(bundle_dir, snapshot):
    engine = fresh_engine(bundle_dir)
    itemcf = engine.models["itemcf"]
    assert folds_in(itemcf)
    for user in snapshot.users.ids[:25]:
        fit = itemcf.recommend(user, 10)
        folded = itemcf.recommend_from_history(engine.history(user), 10)
        assert [r.item_id for r in folded] == [r.item_id for r in fit]
        assert [r.score for r in folded] == pytest.approx([r.score for r in fit], rel=1e-9)


def test_graph_walk_fold_in_equals_fit_time_scoring_without_friends(bundle_dir, snapshot):
    engine = fresh_engine(bundle_dir)
    walk = engine.models["graph_walk"]
    assert folds_in(walk)
    lonely = [u for u in snapshot.users.ids if snapshot.follows[snapshot.users.index[u]].nnz == 0]
    users = lonely[:10] or snapshot.users.ids[:10]
    for user in users:
        fit = walk.score_user(user)
        folded = walk.recommend_from_history(engine.history(user), 10)
        if lonely:
            for r in folded:
                assert r.score == pytest.approx(fit[snapshot.items.index[r.item_id]], rel=1e-9)
        assert folded


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
