"""Impressions through the API: every served list logged with propensities, feedback tied to an
impression (unknown or foreign ids refused, nothing written; the same feedback counted once), the
default policy moving past what a user skipped, and losses counted in /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from kgrec.api.app import create_app
from kgrec.api.settings import Settings, SettingsError
from kgrec.graph.impressions import as_impression_store, parse_impression_id
from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import GraphRecords
from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders.synthetic import generate
from tests.api_fixtures import API_KEY, fill_store, train_bundle

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def graph() -> GraphRecords:
    return generate(users=60, items=90, seed=11).records


@pytest.fixture(scope="module")
def bundle(graph: GraphRecords, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_bundle(build_snapshot(graph), tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture()
def world(graph: GraphRecords, bundle: Path, tmp_path: Path) -> Iterator[tuple[FlaskClient, Path]]:
    url = fill_store(graph, tmp_path / "g")
    app = create_app(Settings(bundle=str(bundle), store=url, api_key=API_KEY, default_model="graph_walk"))
    yield app.test_client(), tmp_path / "g"
    logger = app.extensions["kgrec.impressions"]
    if logger is not None:
        logger.close()


def _store_state(directory: Path) -> tuple[object, object, int]:
    store = MemoryStore(directory)
    try:
        log = as_impression_store(store)
        return store.export(), [(i.id, i.chosen_at, i.disliked_at) for i in log.logged_impressions()], \
            log.impression_count()
    finally:
        store.close()


def _flushed(client: FlaskClient) -> None:
    assert client.application.extensions["kgrec.impressions"].flush(20)


def test_an_exploring_list_carries_propensities_and_impression_ids(world) -> None:
    client, directory = world
    body = client.get("/v1/users/u0001/recommendations?policy=explore&k=10&explain=true").get_json()
    assert body["policy"] == "explore"
    recs = body["recommendations"]
    assert len(recs) == 10
    assert all(0 < r["propensity"] <= 1 for r in recs)
    assert all(r["propensity"] == 1.0 for r in recs[:3])  # the protected head is greedy
    ids = [parse_impression_id(r["impression_id"]) for r in recs]
    assert len({request for request, _ in ids}) == 1 and [p for _, p in ids] == list(range(1, 11))
    for r in recs:
        assert ("exploration" in r) == r.get("explored", False)
        if r.get("explored"):
            assert r["exploration"].startswith("shown to learn whether you like")
    _flushed(client)
    _, logged, count = _store_state(directory)
    assert count == 10 and {i for i, _, _ in logged} == {r["impression_id"] for r in recs}


def test_feedback_names_its_impression_once(world) -> None:
    client, directory = world
    recs = client.get("/v1/users/u0002/recommendations?k=5").get_json()["recommendations"]
    first = recs[0]
    row = {"user": "u0002", "item": first["item"], "weight": 2, "impression_id": first["impression_id"]}
    got = client.post("/v1/interactions", json=row, headers=AUTH)
    assert got.status_code == 201, got.get_json()
    assert got.get_json()["impression_outcomes"] == {"recorded": 1, "already_recorded": 0}
    _, logged, _ = _store_state(directory)
    chosen_at = dict((i, c) for i, c, _ in logged)[first["impression_id"]]
    assert chosen_at is not None
    again = client.post("/v1/interactions", json=[row], headers=AUTH)
    assert again.status_code == 201
    assert again.get_json()["impression_outcomes"] == {"recorded": 0, "already_recorded": 1}
    _, logged, _ = _store_state(directory)
    assert dict((i, c) for i, c, _ in logged)[first["impression_id"]] == chosen_at  # counted once
    dislike = {"user": "u0002", "item": recs[1]["item"], "type": "dislike", "impression_id": recs[1]["impression_id"]}
    assert client.post("/v1/interactions", json=dislike, headers=AUTH).status_code == 201
    _, logged, _ = _store_state(directory)
    assert dict((i, d) for i, _, d in logged)[recs[1]["impression_id"]] is not None


@pytest.mark.parametrize("case", ["unknown", "foreign", "wrong_item", "malformed", "not_a_string"])
def test_bad_impression_ids_are_refused_and_change_nothing(world, case: str) -> None:
    client, directory = world
    recs = client.get("/v1/users/u0003/recommendations?k=3").get_json()["recommendations"]
    _flushed(client)
    imp, item = recs[0]["impression_id"], recs[0]["item"]
    rows = {
        "unknown": ({"user": "u0003", "item": item, "impression_id": "0123456789abcdef:1"}, 404, "unknown_impression"),
        "foreign": ({"user": "u0004", "item": item, "impression_id": imp}, 422, "impression_mismatch"),
        "wrong_item": ({"user": "u0003", "item": recs[1]["item"], "impression_id": imp}, 422, "impression_mismatch"),
        "malformed": ({"user": "u0003", "item": item, "impression_id": "no such thing"}, 404, "unknown_impression"),
        "not_a_string": ({"user": "u0003", "item": item, "impression_id": 7}, 400, "invalid_parameter"),
    }
    row, status, code = rows[case]
    before = _store_state(directory)
    good = {"user": "u0003", "item": recs[2]["item"], "impression_id": recs[2]["impression_id"]}
    got = client.post("/v1/interactions", json=[good, row], headers=AUTH)  # one bad row refuses the batch
    assert got.status_code == status, got.get_json()
    err = got.get_json()["error"]
    assert err["code"] == code and err["field"] == "[1].impression_id"
    assert _store_state(directory) == before


def test_the_default_policy_moves_past_what_was_skipped(world) -> None:
    client, _ = world
    seen: list[str] = []
    for _ in range(4):
        body = client.get("/v1/users/u0005/recommendations?k=8").get_json()
        assert body["policy"] == "learn"
        items = [r["item"] for r in body["recommendations"]]
        assert len(items) == 8 and not set(items) & set(seen)  # never the same list again: it never stalls
        seen += items
    greedy = [r["item"] for r in client.get("/v1/users/u0005/recommendations?k=8&policy=greedy").get_json()[
        "recommendations"]]
    assert greedy == seen[:8]  # today's behaviour is still one parameter away


def test_a_bad_policy_is_a_clear_400(world) -> None:
    client, _ = world
    got = client.get("/v1/users/u0001/recommendations?policy=thompson")
    assert got.status_code == 400
    assert got.get_json()["error"]["field"] == "policy"
    with pytest.raises(SettingsError, match="KGREC_DEFAULT_POLICY"):
        Settings.from_env({"KGREC_DEFAULT_POLICY": "bandit"})
    with pytest.raises(SettingsError, match="KGREC_IMPRESSIONS"):
        Settings.from_env({"KGREC_IMPRESSIONS": "maybe"})


def test_losses_are_counted_and_never_fail_a_request(graph: GraphRecords, bundle: Path, tmp_path: Path) -> None:
    url = fill_store(graph, tmp_path / "g")
    app = create_app(Settings(bundle=str(bundle), store=url, api_key=API_KEY, impression_buffer=15))
    client = app.test_client()
    logger = app.extensions["kgrec.impressions"]
    try:
        logger.flush()
        first = client.get("/v1/users/u0001/recommendations?k=10").get_json()["recommendations"]
        assert all("impression_id" in r for r in first)
        assert logger.flush(20)
        logger._write = _refuse  # the store refuses every batch from now on
        assert logger.flush(20)
        served = [client.get(f"/v1/users/u00{n:02d}/recommendations?k=10") for n in range(2, 6)]
        assert all(r.status_code == 200 and len(r.get_json()["recommendations"]) == 10 for r in served)
        assert logger.flush(20)
        metrics = client.get("/metrics").get_data(as_text=True)
        counts = {o: _sample(metrics, o) for o in ("logged", "dropped", "failed")}
        assert counts["logged"] == 10
        assert counts["dropped"] + counts["failed"] == 40 and counts["failed"] >= 10
    finally:
        logger.close()


def _refuse(fn):  # type: ignore[no-untyped-def]
    from kgrec.graph.store_errors import StoreUnavailable

    raise StoreUnavailable("refused by the test")


def _sample(metrics: str, outcome: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith(f'kgrec_impressions_total{{outcome="{outcome}"}}'))
    return float(line.rsplit(" ", 1)[1])


def test_impressions_off_serves_without_ids(graph: GraphRecords, bundle: Path, tmp_path: Path) -> None:
    url = fill_store(graph, tmp_path / "g")
    app = create_app(Settings.from_env({"KGREC_BUNDLE": str(bundle), "KGREC_STORE": url, "KGREC_IMPRESSIONS": "off"}))
    recs = app.test_client().get("/v1/users/u0001/recommendations?policy=explore").get_json()["recommendations"]
    assert recs and all("impression_id" not in r and 0 < r["propensity"] <= 1 for r in recs)
    assert _store_state(tmp_path / "g")[2] == 0
