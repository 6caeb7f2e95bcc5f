"""The bad-input corpus (``tests/bad_input_corpus.py``) against the real app and MemoryStore:
every case answers its 4xx with a JSON error naming the field, leaves the store's files as they
were, and the worker takes the next good write (no request poisons it)."""

from __future__ import annotations

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.graph.memory import MemoryStore
from kgrec.graph.schema import Label
from tests.api_fixtures import ANALYST_KEY, API_KEY, fill_store, fresh_server, train_bundle
from tests.bad_input_corpus import ANALYST, WRITER, Case, cases
from tests.fuzz_oracle import digest

CASES = cases()
KEYS = {WRITER: API_KEY, ANALYST: ANALYST_KEY}


@pytest.fixture(scope="module")
def served(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    bundle = train_bundle(snapshot, root / "bundle")
    fill_store(synthetic.records, root / "store")
    settings = Settings(bundle=str(bundle), store=f"memory://{root / 'store'}", api_key=API_KEY,
                        analyst_key=ANALYST_KEY, max_body=65_536)
    app = create_app(settings, server=fresh_server(bundle))
    return app, root / "store"


def send(client, case: Case):
    headers = dict(case.headers)
    if case.auth in KEYS:
        headers["Authorization"] = f"Bearer {KEYS[case.auth]}"
    return client.open(case.path, method=case.method, data=case.body, headers=headers,
                       content_type="application/json")


def test_the_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(served, case):
    app, store_dir = served
    client = app.test_client()
    before = digest(store_dir)
    resp = send(client, case)
    text = resp.get_data(as_text=True)
    assert resp.status_code == case.status, text
    assert resp.mimetype == "application/json" and "Traceback" not in text
    error = resp.get_json()["error"]
    assert set(error) <= {"code", "message", "field"} and error["message"]
    if case.field is not None:
        assert error.get("field") == case.field, error
    assert digest(store_dir) == before
    name = f"after-{case.name}"
    good = client.post("/v1/users", json={"id": name}, headers={"Authorization": f"Bearer {API_KEY}"})
    assert good.status_code == 201, good.get_json()
    assert MemoryStore(store_dir).get_node(Label.USER, name) == {"id": name, "attrs": {}}


def test_a_refused_lone_surrogate_leaves_no_trace_in_the_workers_view(served):
    """The issue's first case: the memory store once kept the row in memory and failed every
    later flush; now the row never reaches it, and the store's view equals its files."""
    app, store_dir = served
    client = app.test_client()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    resp = client.post("/v1/interactions", data=b'[{"user": "\\ud800", "item": "i0001"}]', headers=auth,
                       content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "[0].user"
    counts = app.extensions["kgrec.store"].call(lambda s: s.counts())
    assert counts == MemoryStore(store_dir).counts()
    assert client.post("/v1/interactions", json={"user": "u0001", "item": "i0002", "weight": 2},
                       headers=auth).status_code == 201
    assert client.get("/v1/health").get_json()["store"]["reachable"] is True
