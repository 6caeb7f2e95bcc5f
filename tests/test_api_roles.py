"""Three roles with their own keys: writers write, analysts run Cypher, readers read (when
``KGREC_READ_KEY`` is set); every setting takes a comma-separated list so keys can rotate."""

from __future__ import annotations

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from tests.api_fixtures import fill_store, fresh_server, train_bundle

OLD_WRITER, NEW_WRITER = "writer-old-0123456789", "writer-new-0123456789"
ANALYST, READER = "analyst-0123456789", "reader-0123456789"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def parts(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("roles")
    return train_bundle(snapshot, root / "bundle"), fill_store(synthetic.records, root / "store")


def client_with(parts, **keys):
    bundle, store = parts
    return create_app(Settings(bundle=str(bundle), store=store, **keys), server=fresh_server(bundle)).test_client()


def test_both_keys_of_a_rotation_write_and_a_removed_one_does_not(parts):
    both = client_with(parts, api_key=f"{OLD_WRITER}, {NEW_WRITER}")
    for n, key in enumerate((OLD_WRITER, NEW_WRITER)):
        assert both.post("/v1/users", json={"id": f"rot-{n}"}, headers=bearer(key)).status_code == 201
    rotated = client_with(parts, api_key=NEW_WRITER)
    resp = rotated.post("/v1/users", json={"id": "rot-old"}, headers=bearer(OLD_WRITER))
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert rotated.post("/v1/users", json={"id": "rot-new"}, headers=bearer(NEW_WRITER)).status_code == 201


def test_without_a_read_key_reads_are_open(parts, snapshot):
    client = client_with(parts, api_key=NEW_WRITER)
    assert client.get(f"/v1/users/{snapshot.users.ids[0]}/recommendations?k=2").status_code == 200
    assert client.get("/ui/").status_code == 200


def test_with_a_read_key_every_read_needs_a_key_of_some_role(parts, snapshot):
    client = client_with(parts, api_key=NEW_WRITER, analyst_key=ANALYST, read_key=READER)
    user, item = snapshot.users.ids[0], snapshot.items.ids[0]
    reads = [f"/v1/users/{user}/recommendations?k=2", f"/v1/items/{item}/similar?k=2", f"/v1/users/{user}",
             f"/v1/items/{item}", f"/v1/users/{user}/recommendations/{item}/explanation", "/v1/models",
             "/ui/", f"/ui/users/{user}"]
    for path in reads:
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert client.get(path, headers=bearer("not-a-key-of-anyone")).status_code == 401, path
        for key in (READER, ANALYST, NEW_WRITER):
            assert client.get(path, headers=bearer(key)).status_code == 200, (path, key)
    for path in ("/v1/health", "/v1/openapi.json", "/openapi.json"):
        assert client.get(path).status_code in (200, 302), path
    assert client.get("/ui/static/kgrec.css").status_code == 200


def test_readers_and_analysts_do_not_write(parts):
    client = client_with(parts, api_key=NEW_WRITER, analyst_key=ANALYST, read_key=READER)
    for key in (READER, ANALYST):
        resp = client.post("/v1/users", json={"id": "not-allowed"}, headers=bearer(key))
        assert resp.status_code == 401 and resp.get_json()["error"]["field"] == "Authorization"


def test_cypher_needs_an_analyst_key_and_is_off_without_one(parts):
    off = client_with(parts, api_key=NEW_WRITER)
    resp = off.post("/v1/cypher", json={"query": "RETURN 1"}, headers=bearer(NEW_WRITER))
    assert resp.status_code == 401 and "KGREC_ANALYST_KEY" in resp.get_json()["error"]["message"]


def test_settings_read_every_role():
    s = Settings.from_env({"KGREC_API_KEY": f"{OLD_WRITER},{NEW_WRITER}", "KGREC_ANALYST_KEY": ANALYST,
                           "KGREC_READ_KEY": READER})
    assert s.writer_keys == (OLD_WRITER.encode(), NEW_WRITER.encode())
    assert set(s.reader_keys) == {k.encode() for k in (OLD_WRITER, NEW_WRITER, ANALYST, READER)}
