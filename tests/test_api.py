"""The JSON API through Flask's test client: real app, real bundle, real MemoryStore."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings, SettingsError
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="session")
def bundle_dir(snapshot, tmp_path_factory) -> Path:
    return train_bundle(snapshot, tmp_path_factory.mktemp("api") / "bundle")


@pytest.fixture()
def store_dir(synthetic, tmp_path) -> Path:
    d = tmp_path / "store"
    fill_store(synthetic.records, d)
    return d


@pytest.fixture()
def app(bundle_dir, store_dir):
    settings = Settings(bundle=str(bundle_dir), store=f"memory://{store_dir}", api_key=API_KEY, max_body=4096)
    return create_app(settings, server=fresh_server(bundle_dir))


@pytest.fixture()
def client(app):
    return app.test_client()


def busy_user(snapshot) -> str:
    counts = snapshot.interactions.getnnz(axis=1)
    return snapshot.users.ids[int(counts.argmax())]


def assert_error(resp, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    assert "Traceback" not in resp.get_data(as_text=True)
    if field is not None:
        assert body["error"]["field"] == field
    return body["error"]


# -- startup ----------------------------------------------------------------------------
def test_app_loads_bundle_from_settings(bundle_dir, store_dir):
    app = create_app(Settings(bundle=str(bundle_dir), store=f"memory://{store_dir}"))
    body = app.test_client().get("/v1/health").get_json()
    assert body["bundle"]["loaded"] is True
    assert body["bundle"]["fingerprint"] == json.loads((bundle_dir / "manifest.json").read_text())["snapshot"][
        "fingerprint"]


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KGREC_BUNDLE": "/nonexistent/bundle"}, "KGREC_BUNDLE"),
        ({"KGREC_STORE": "postgres://x"}, "KGREC_STORE"),
        ({"KGREC_MAX_BODY": "lots"}, "KGREC_MAX_BODY"),
        ({"KGREC_MAX_BODY": "10"}, "KGREC_MAX_BODY"),
        ({"KGREC_API_KEY": "short"}, "KGREC_API_KEY"),
        ({"KGREC_API_KEY": "good-key-123456,short"}, "KGREC_API_KEY"),
        ({"KGREC_ANALYST_KEY": "has a space in it"}, "KGREC_ANALYST_KEY"),
        ({"KGREC_READ_KEY": "n\u00f6n-ascii-key"}, "KGREC_READ_KEY"),
        ({"KGREC_DEFAULT_K": "0"}, "KGREC_DEFAULT_K"),
        ({"KGREC_MAX_REASONS": "0"}, "KGREC_MAX_REASONS"),
    ],
)
def test_bad_settings_fail_at_startup_naming_the_variable(env, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_unknown_default_model_fails_at_startup(bundle_dir, store_dir):
    with pytest.raises(SettingsError, match="KGREC_DEFAULT_MODEL"):
        create_app(Settings(bundle=str(bundle_dir), store=f"memory://{store_dir}", default_model="nope"))


def test_missing_bundle_setting_fails_at_startup(store_dir):
    with pytest.raises(SettingsError, match="KGREC_BUNDLE"):
        create_app(Settings(store=f"memory://{store_dir}"))


def test_settings_from_env_reads_every_variable(bundle_dir):
    s = Settings.from_env({"KGREC_BUNDLE": str(bundle_dir), "KGREC_STORE": "memory://x", "KGREC_API_KEY": API_KEY,
                           "KGREC_MAX_BODY": "2048", "KGREC_DEFAULT_MODEL": "itemcf", "KGREC_DEFAULT_K": "5"})
    assert (s.bundle, s.store, s.api_key, s.max_body, s.default_model, s.default_k) == (
        str(bundle_dir), "memory://x", API_KEY, 2048, "itemcf", 5)


# -- recommendations ---------------------------------------------------------------------
def test_recommendations_shape_and_no_seen_items(client, snapshot):
    user = busy_user(snapshot)
    resp = client.get(f"/v1/users/{user}/recommendations?k=7")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["user"] == user and body["model"] == "graph_walk"
    recs = body["recommendations"]
    assert len(recs) == 7
    assert [r["rank"] for r in recs] == list(range(1, 8))
    seen = {snapshot.items.ids[j] for j in snapshot.user_items(snapshot.users.index[user])}
    assert not seen & {r["item"] for r in recs}
    for r in recs:
        assert set(r) == {"item", "title", "score", "rank", "source", "propensity", "impression_id"}
        assert r["propensity"] == 1.0  # the default policy (learn) is deterministic
        assert r["title"] == snapshot.item_titles[snapshot.items.index[r["item"]]]
    assert recs[0]["source"] == "graph_walk"
    assert [r["score"] for r in recs if r["source"] == "graph_walk"] == sorted(
        (r["score"] for r in recs if r["source"] == "graph_walk"), reverse=True)


def test_model_and_exclude_parameters(client, snapshot):
    user = busy_user(snapshot)
    first = client.get(f"/v1/users/{user}/recommendations?k=5&model=itemcf").get_json()
    assert first["model"] == "itemcf"
    assert first["recommendations"][0]["source"] == "itemcf"
    drop = [r["item"] for r in first["recommendations"][:2]]
    again = client.get(f"/v1/users/{user}/recommendations?k=5&model=itemcf&exclude={','.join(drop)}").get_json()
    assert not set(drop) & {r["item"] for r in again["recommendations"]}
    assert len(again["recommendations"]) == 5


def test_explain_attaches_real_paths(client, snapshot):
    user = busy_user(snapshot)
    recs = client.get(f"/v1/users/{user}/recommendations?k=3&explain=true").get_json()["recommendations"]
    for r in recs:
        assert r["reasons"], r
        for reason in r["reasons"]:
            assert len(reason["nodes"]) == len(reason["rels"]) + 1
            assert reason["nodes"][0]["id"] == user and reason["nodes"][-1]["id"] == r["item"]
            assert "$" in reason["cypher"] and reason["params"]
        assert len(r["reasons"]) <= 5
        shown = sum(x["contribution"] for x in r["reasons"])
        assert shown + r["omitted_contribution"] == pytest.approx(r["score"], rel=1e-6)
        contributions = [x["contribution"] for x in r["reasons"]]
        assert contributions == sorted(contributions, reverse=True)


def test_unknown_user_gets_fallback_marked_by_source(client, snapshot):
    body = client.get("/v1/users/never-seen-before/recommendations?k=5&explain=1").get_json()
    recs = body["recommendations"]
    assert len(recs) == 5 and body["known_user"] is False
    assert {r["source"] for r in recs} == {"popularity"}
    audience = snapshot.interactions.getnnz(axis=0)
    assert recs[0]["item"] == snapshot.items.ids[int(audience.argmax())]
    assert all(r["reasons"] and r["reasons"][0]["nodes"][0]["id"] == r["item"] for r in recs)


@pytest.mark.parametrize(
    ("query", "field"),
    [("k=0", "k"), ("k=1001", "k"), ("k=-3", "k"), ("k=ten", "k"), ("model=nope", "model"),
     ("explain=maybe", "explain")],
)
def test_bad_parameters_are_400_naming_the_field(client, snapshot, query, field):
    assert_error(client.get(f"/v1/users/{busy_user(snapshot)}/recommendations?{query}"), 400, field)


def test_k_bounds_are_inclusive(client, snapshot):
    user = busy_user(snapshot)
    assert len(client.get(f"/v1/users/{user}/recommendations?k=1").get_json()["recommendations"]) == 1
    many = client.get(f"/v1/users/{user}/recommendations?k=1000").get_json()["recommendations"]
    seen = len(snapshot.user_items(snapshot.users.index[user]))
    items_with_audience = int((snapshot.interactions.getnnz(axis=0) > 0).sum())
    assert items_with_audience - seen <= len(many) <= len(snapshot.items) - seen
    assert len({r["item"] for r in many}) == len(many)


# -- similar, explanation, entities --------------------------------------------------------
def test_similar_items(client, snapshot):
    item = snapshot.items.ids[0]
    body = client.get(f"/v1/items/{item}/similar?k=4&explain=true").get_json()
    assert body["item"] == item and len(body["similar"]) == 4
    assert item not in {r["item"] for r in body["similar"]}
    for r in body["similar"]:
        assert r["reasons"]
        assert all(reason["nodes"][0]["id"] == item and reason["nodes"][-1]["id"] == r["item"]
                   for reason in r["reasons"])


def test_similar_unknown_item_is_404(client):
    assert_error(client.get("/v1/items/no-such-item/similar"), 404, "item")


def test_explanation_endpoint_matches_recommendation(client, snapshot):
    user = busy_user(snapshot)
    top = client.get(f"/v1/users/{user}/recommendations?k=1").get_json()["recommendations"][0]
    body = client.get(f"/v1/users/{user}/recommendations/{top['item']}/explanation").get_json()
    assert body["model"] == "graph_walk" and body["reasons"]
    assert body["score"] == pytest.approx(top["score"], rel=1e-6)


def test_explanation_errors(client, snapshot):
    user = busy_user(snapshot)
    assert_error(client.get(f"/v1/users/{user}/recommendations/no-such-item/explanation"), 404, "item")
    item = snapshot.items.ids[0]
    assert_error(client.get(f"/v1/users/{user}/recommendations/{item}/explanation?model=x"), 400, "model")


def test_get_user_and_item(client, snapshot):
    user = busy_user(snapshot)
    body = client.get(f"/v1/users/{user}").get_json()
    assert body["in_bundle"] and body["interactions"] == len(snapshot.user_items(snapshot.users.index[user]))
    item = snapshot.items.ids[3]
    ib = client.get(f"/v1/items/{item}").get_json()
    assert ib["title"] == snapshot.item_titles[3]
    assert ib["audience"] == int(snapshot.interactions.getnnz(axis=0)[3])
    assert_error(client.get("/v1/users/nobody-at-all"), 404, "user")
    assert_error(client.get("/v1/items/nothing-at-all"), 404, "item")


def test_models_health_openapi(client):
    models = client.get("/v1/models").get_json()
    assert models["default"] == "graph_walk"
    assert {m["name"] for m in models["models"]} >= {"graph_walk", "itemcf", "popularity"}
    health = client.get("/v1/health").get_json()
    assert health["status"] == "ok" and health["store"]["reachable"] is True
    spec = client.get("/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert "/users/{user_id}/recommendations" in spec["paths"]
    assert client.get("/openapi.json").status_code in (301, 302, 308)


def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error(client.get("/v1/nothing/here"), 404)
    assert_error(client.delete("/v1/models"), 405)


# -- writes ------------------------------------------------------------------------------
def test_writes_need_the_api_key(client, snapshot):
    row = {"user": "u-new", "item": snapshot.items.ids[0]}
    assert_error(client.post("/v1/interactions", json=row), 401)
    assert_error(client.post("/v1/interactions", json=row, headers={"Authorization": "Bearer wrong-key-123"}), 401)
    assert_error(client.post("/v1/users", json={"id": "x"}, headers={"Authorization": API_KEY}), 401)
    assert client.post("/v1/interactions", json=row, headers=AUTH).status_code == 201


def test_writes_refused_when_no_key_is_configured(bundle_dir, store_dir, snapshot):
    app = create_app(Settings(bundle=str(bundle_dir), store=f"memory://{store_dir}"), server=fresh_server(bundle_dir))
    err = assert_error(app.test_client().post("/v1/users", json={"id": "x"}, headers=AUTH), 401)
    assert "KGREC_API_KEY" in err["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ("", "body"),
        ("[]", "body"),
        ('"text"', "body"),
        ('{"user": "a"}', "item"),
        ('{"user": "", "item": "i0001"}', "user"),
        ('{"user": "a", "item": "i0001", "weight": -1}', "weight"),
        ('{"user": "a", "item": "i0001", "weight": "heavy"}', "weight"),
        ('{"user": "a", "item": "i0001", "ts": 99999999999999}', "ts"),
        ('{"user": "a", "item": "i0001", "colour": "red"}', "colour"),
        ('[{"user": "a", "item": "i0001"}, {"user": "b"}]', "[1].item"),
    ],
)
def test_malformed_interactions_are_400_naming_the_field(client, body, field):
    resp = client.post("/v1/interactions", data=body, headers=AUTH, content_type="application/json")
    assert_error(resp, 400, field)


def test_interaction_with_unknown_item_is_404_and_writes_nothing(client, store_dir):
    resp = client.post("/v1/interactions", json=[{"user": "a", "item": "i0001"}, {"user": "a", "item": "ghost"}],
                       headers=AUTH)
    assert_error(resp, 404, "[1].item")
    from kgrec.graph.memory import MemoryStore

    store = MemoryStore(store_dir)
    assert store.get_node(__import__("kgrec.graph.schema").graph.schema.Label.USER, "a") is None


def test_oversized_body_is_413(client):
    rows = [{"user": f"user-{n}", "item": "i0001"} for n in range(200)]
    err = assert_error(client.post("/v1/interactions", json=rows, headers=AUTH), 413, "body")
    assert "4096" in err["message"]


def test_feedback_is_stored_and_reflected_without_retraining(client, snapshot, store_dir):
    user = busy_user(snapshot)
    before = client.get(f"/v1/users/{user}/recommendations?k=5").get_json()["recommendations"]
    liked = [r["item"] for r in before[:2]]
    resp = client.post("/v1/interactions", json=[{"user": user, "item": i, "weight": 5, "ts": 1_700_000_000}
                                                 for i in liked], headers=AUTH)
    assert resp.status_code == 201 and resp.get_json()["written"] == 2
    after = client.get(f"/v1/users/{user}/recommendations?k=5").get_json()["recommendations"]
    assert not set(liked) & {r["item"] for r in after}
    assert len(after) == 5
    history = client.get(f"/v1/users/{user}").get_json()
    assert {h["item"] for h in history["history"]} >= set(liked)
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.schema import Label, Rel

    reopened = MemoryStore(store_dir)
    assert all(reopened.has_relationship((Label.USER, user), Rel.INTERACTED, (Label.ITEM, i)) for i in liked)


def test_new_user_feedback_personalises_cold_start(client, snapshot):
    """A user the bundle never saw posts feedback; items they posted are never served back."""
    item = snapshot.items.ids[5]
    client.post("/v1/interactions", json={"user": "brand-new", "item": item}, headers=AUTH)
    body = client.get("/v1/users/brand-new/recommendations?k=10").get_json()
    assert body["known_user"] is True
    assert item not in {r["item"] for r in body["recommendations"]}
    assert len(body["recommendations"]) == 10


def test_post_users_and_items_then_read_them(client):
    resp = client.post("/v1/users", json=[{"id": "alice", "attrs": {"age": 31}}, {"id": "bob"}], headers=AUTH)
    assert resp.status_code == 201 and resp.get_json()["written"] == 2
    assert client.get("/v1/users/alice").get_json()["attrs"] == {"age": 31}
    resp = client.post("/v1/items", json={"id": "new-album", "title": "Ünïcode Sounds"}, headers=AUTH)
    assert resp.status_code == 201
    body = client.get("/v1/items/new-album").get_json()
    assert body["title"] == "Ünïcode Sounds" and body["in_bundle"] is False
    assert client.post("/v1/interactions", json={"user": "alice", "item": "new-album"},
                       headers=AUTH).status_code == 201
    assert_error(client.post("/v1/items", json={"id": "x", "title": 5}, headers=AUTH), 400, "title")
    assert_error(client.post("/v1/users", json={"id": "x", "attrs": {"a": [1]}}, headers=AUTH), 400, "attrs.a")


# -- store down ----------------------------------------------------------------------------
def break_store(store_dir: Path) -> None:
    """The store's directory disappears and a plain file takes its place (works as root too)."""
    shutil.rmtree(store_dir)
    store_dir.write_text("not a directory")


def test_store_down_writes_503_reads_still_served(client, snapshot, store_dir):
    user = busy_user(snapshot)
    assert client.post("/v1/users", json={"id": "warm-up"}, headers=AUTH).status_code == 201
    break_store(store_dir)
    item = snapshot.items.ids[0]
    err = assert_error(client.post("/v1/interactions", json={"user": user, "item": item}, headers=AUTH), 503)
    assert err["code"] == "store_unavailable"
    assert_error(client.post("/v1/users", json={"id": "later"}, headers=AUTH), 503)
    recs = client.get(f"/v1/users/{user}/recommendations?k=5&explain=true")
    assert recs.status_code == 200
    assert item in {r["item"] for r in recs.get_json()["recommendations"]} or len(recs.get_json()[
        "recommendations"]) == 5
    assert client.get(f"/v1/items/{item}/similar").status_code == 200
    assert client.get(f"/v1/users/{user}").status_code == 200
    health = client.get("/v1/health").get_json()
    assert health["status"] == "degraded" and health["store"]["reachable"] is False


def test_store_unreachable_at_startup_still_serves_reads(bundle_dir, tmp_path, snapshot):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the store directory should be")
    app = create_app(Settings(bundle=str(bundle_dir), store=f"memory://{blocker}", api_key=API_KEY),
                     server=fresh_server(bundle_dir))
    c = app.test_client()
    assert c.get(f"/v1/users/{busy_user(snapshot)}/recommendations").status_code == 200
    assert_error(c.post("/v1/users", json={"id": "x"}, headers=AUTH), 503)


def test_reason_serialisation_matches_reason_to_dict(app, snapshot):
    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.reason_json import reason_json

    server = app.extensions["kgrec.server"]
    user = busy_user(snapshot)
    for served in server.recommend(Query(user, 3, explain=True)):
        for reason in served.reasons:
            assert reason_json(reason) == reason.to_dict()


def test_id_filters_take_commas_in_their_repeatable_form(app, snapshot):
    """``tags=a,b`` splits on commas; ``tag=`` (repeatable) takes each value whole, so an id that
    holds a comma can be named; both forms combine."""
    c = app.test_client()
    user = busy_user(snapshot)
    listed = c.get(f"/v1/users/{user}/recommendations?k=5").get_json()["recommendations"]
    first, second = listed[0]["item"], listed[1]["item"]
    both = c.get(f"/v1/users/{user}/recommendations?k=5&exclude_item={first}&exclude={second}").get_json()
    assert not {first, second} & {r["item"] for r in both["recommendations"]}
    comma = c.get(f"/v1/users/{user}/recommendations?k=5&tag=no,such&not_tag=x,y").get_json()
    assert comma["recommendations"] == []  # one tag id "no,such", which no item carries
    split = c.get(f"/v1/users/{user}/recommendations?k=5&not_tags=no,such").get_json()
    assert len(split["recommendations"]) == 5
