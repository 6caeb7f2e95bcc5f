"""Every id the API accepts can be read back by URL and linked from /ui; ids it cannot address
(with '/', or '.' and '..') are refused when written, with a message saying why."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ODD = ["a?b#c %d;ü&=+", "東京 事変", "x%2Fy", "'; DROP", "tab-less but spaced  "]


@pytest.fixture(scope="module")
def client(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("ids")
    bundle = train_bundle(snapshot, root / "bundle")
    store = fill_store(synthetic.records, root / "store")
    return create_app(Settings(bundle=str(bundle), store=store, api_key=API_KEY),
                      server=fresh_server(bundle)).test_client()


@pytest.mark.parametrize("key", ODD)
def test_an_odd_id_written_is_read_back_by_url(client, key):
    assert client.post("/v1/items", json={"id": key, "title": f"title of {key}"}, headers=AUTH).status_code == 201
    assert client.post("/v1/users", json={"id": key, "attrs": {"n": 1}}, headers=AUTH).status_code == 201
    item = client.get("/v1/items/" + quote(key, safe=""))
    assert item.status_code == 200 and item.get_json()["id"] == key
    user = client.get("/v1/users/" + quote(key, safe=""))
    assert user.status_code == 200 and user.get_json()["id"] == key and user.get_json()["attrs"] == {"n": 1}


def test_ui_links_to_an_odd_item_resolve(client, snapshot):
    key = ODD[0]
    client.post("/v1/items", json={"id": key, "title": "Odd one"}, headers=AUTH)
    user = snapshot.users.ids[0]
    assert client.post("/v1/interactions", json={"user": user, "item": key, "weight": 50},
                       headers=AUTH).status_code == 201
    page = client.get(f"/ui/users/{quote(user, safe='')}").get_data(as_text=True)
    links = [html.unescape(h) for h in re.findall(r'href="(/ui/items/[^"]*)"', page)]
    odd = [h for h in links if h == "/ui/items/" + quote(key, safe="/;&=+")]
    assert odd, links
    assert client.get(odd[0]).status_code == 200


@pytest.mark.parametrize(("key", "needle"), [("a/b", "contains '/'"), ("..", "resolves away"), (".", "resolves away")])
def test_ids_a_url_cannot_address_are_refused_when_written(client, key, needle):
    for path, body, field in (("/v1/users", {"id": key}, "id"), ("/v1/items", {"id": key}, "id"),
                              ("/v1/interactions", {"user": key, "item": "i0001"}, "user")):
        resp = client.post(path, json=body, headers=AUTH)
        assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field
        assert needle in resp.get_json()["error"]["message"]
    resp = client.get("/v1/users/" + quote("a/b", safe=""))
    assert resp.status_code == 404 and resp.is_json


def test_an_id_too_long_to_store_is_refused_in_the_path(client):
    """An id no store can hold is a client error (400), not a store failure (503), on reads and
    on the write that would have reached the store."""
    long_id = "0" * 257
    for method, path, body in (("get", f"/v1/items/{long_id}", None),
                               ("get", f"/v1/users/{long_id}/recommendations", None),
                               ("patch", f"/v1/items/{long_id}", {"hidden": True})):
        resp = getattr(client, method)(path, json=body, headers=AUTH)
        assert resp.status_code == 400, (method, path, resp.status_code)
        assert resp.get_json()["error"]["field"] in {"item_id", "user_id"}
        assert "longer than 256" in resp.get_json()["error"]["message"]
