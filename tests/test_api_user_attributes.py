"""``POST /v1/users`` with ``attrs``: the loaders' treatment (Attribute nodes and HAS_ATTRIBUTE links,
by the rules the stored nodes imply) and validation (a bad value is a 400 naming it, nothing
written); another worker's store handle reads the new links at its next request."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import GraphRecords, User
from kgrec.graph.schema import Label
from kgrec.graph.user_attributes import add_attribute_records
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def bundle_dir(snapshot, tmp_path_factory) -> Path:
    return train_bundle(snapshot, tmp_path_factory.mktemp("api-attrs") / "bundle")


@pytest.fixture()
def store_dir(synthetic, tmp_path) -> Path:
    """The synthetic graph whose users have profiles, loaded as a loader loads them."""
    records = GraphRecords(**{k: list(v) for k, v in vars(synthetic.records).items()})  # the session's stays as it is
    records.users = [User(u.id, {"age": 18 + n % 50, "gender": "FM"[n % 2], "team": ["red", "blue", "green"][n % 3],
                                 "income": 500 * n, "nick": f"nick{n}"}) for n, u in enumerate(records.users)]
    add_attribute_records(records)
    d = tmp_path / "store"
    fill_store(records, d)
    return d


def make_app(bundle_dir: Path, store_dir: Path, max_body: int = 4096):  # type: ignore[no-untyped-def]
    settings = Settings(bundle=str(bundle_dir), store=f"memory://{store_dir}", api_key=API_KEY, max_body=max_body)
    return create_app(settings, server=fresh_server(bundle_dir))


def links(store_dir: Path, user: str) -> frozenset[str] | None:
    """What a process that opens the store now reads."""
    return MemoryStore(store_dir).feedback(user).attributes


def test_posted_attributes_link_the_user_to_attribute_nodes(bundle_dir: Path, store_dir: Path) -> None:
    client = make_app(bundle_dir, store_dir).test_client()
    body = {"id": "newbie", "attrs": {"age": 29, "gender": "F", "zip": "10001", "team": "red", "income": 2750,
                                      "nick": "nb", "shoe": 42}}
    resp = client.post("/v1/users", json=body, headers=AUTH)
    assert resp.status_code == 201 and resp.get_json() == {"written": 1, "ids": ["newbie"]}
    # age band, gender, region from the zip, the team the load made categorical, the income band the load
    # cut (quintiles of 0..59,500: edges 11,500 / 23,500 / 35,500 / 47,500); nick and shoe stay plain
    assert links(store_dir, "newbie") == {"age:25-34", "gender:F", "region:1", "team:red", "income:<11500"}
    assert client.get("/v1/users/newbie").get_json()["attrs"] == body["attrs"]
    resp = client.post("/v1/users", json=[{"id": "newbie", "attrs": {"age": 61, "team": "purple"}}], headers=AUTH)
    assert resp.status_code == 201
    assert links(store_dir, "newbie") == {"age:55+", "team:purple"}  # replaced whole, a new group made
    assert MemoryStore(store_dir).get_node(Label.ATTRIBUTE, "team:purple") == {
        "id": "team:purple", "kind": "team", "value": "purple", "name": "team purple"}


@pytest.mark.parametrize(("value", "field"), [
    ("F\x00", "attrs.gender"), ("\ud800", "attrs.gender"), ("x" * 65_537, "attrs.gender"), ([1], "attrs.gender"),
])
def test_bad_attribute_values_are_refused_and_nothing_is_written(bundle_dir: Path, store_dir: Path, value: object,
                                                                  field: str) -> None:
    client = make_app(bundle_dir, store_dir, max_body=200_000).test_client()
    before = MemoryStore(store_dir).export()
    resp = client.post("/v1/users", json={"id": "u0001", "attrs": {"age": 40, "gender": value}}, headers=AUTH)
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field
    assert MemoryStore(store_dir).export() == before


def test_another_worker_reads_the_new_links_at_its_next_request(bundle_dir: Path, store_dir: Path) -> None:
    """Two apps on one store directory stand for two gunicorn workers (the real processes are in
    tests/test_store_attributes.py): the second's cached token for the user goes stale."""
    first, second = make_app(bundle_dir, store_dir), make_app(bundle_dir, store_dir)
    with second.app_context():
        handle = second.extensions["kgrec.store"]
        token = handle.call(lambda st: st.feedback("u0002")).user_token
    assert first.test_client().post("/v1/users", json={"id": "u0002", "attrs": {"gender": "X"}},
                                    headers=AUTH).status_code == 201
    with second.app_context():
        again = handle.call(lambda st: st.feedback("u0002", token))
    assert again.user_token != token and again.attributes == {"gender:X"}
