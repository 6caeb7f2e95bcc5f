"""Impressions with real processes: ``kgrec serve`` with two gunicorn workers, on both stores.

Lists served concurrently by both workers are all stored, each impression exactly once; feedback
naming an impression is accepted by whichever worker gets it (even before the serving worker wrote
it); and what one worker showed is skipped by the other at the user's next request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from kgrec.graph.impressions import as_impression_store
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from tests.api_fixtures import API_KEY
from tests.serve_fixtures import serving

AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def call(url: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = Request(url, data=data, method="GET" if body is None else "POST",
                  headers={"Connection": "close", **(AUTH if body is not None else {})})
    try:
        with urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    graph = generate(users=80, items=120, seed=9)
    url = f"memory://{tmp_path / 'g'}" if request.param == "memory" else request.getfixturevalue("neo4j_uri")
    with open_store(url) as store:
        store.clear()
        store.load(graph.records)
        snap = store.snapshot()
    bundle = save_bundle(tmp_path / "bundle", snap, fit_models(snap, ["graph_walk", "itemcf"], seed=1))
    with serving(bundle, url, tmp_path, env={"KGREC_API_KEY": API_KEY}) as (port, _):
        yield f"http://127.0.0.1:{port}", url
    if request.param == "neo4j":
        with open_store(url) as store:
            store.clear()


def _stored(url: str) -> list[str]:
    with open_store(url) as store:
        return [i.id for i in as_impression_store(store).logged_impressions()]


def test_impressions_from_two_workers_are_stored_exactly_once(world) -> None:
    base, url = world
    asks = [f"{base}/v1/users/u{n % 40:04d}/recommendations?k=5{'&policy=explore' if n % 2 else ''}"
            for n in range(80)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, asks))
    assert all(status == 200 for status, _ in answers)
    served = [r["impression_id"] for _, body in answers for r in body["recommendations"]]
    assert len(served) == 400 and len(set(served)) == 400
    deadline = time.monotonic() + 30
    while len(stored := _stored(url)) < len(served) and time.monotonic() < deadline:  # written in the background
        time.sleep(0.2)
    assert sorted(stored) == sorted(served)  # every one, once


def test_feedback_by_impression_reaches_any_worker_and_skips_show_everywhere(world) -> None:
    base, _ = world
    for n in range(6):  # serve, then at once name the impression (maybe to the other worker)
        status, body = call(f"{base}/v1/users/u{50 + n:04d}/recommendations?k=4&policy=explore")
        first = body["recommendations"][0]
        status, got = call(f"{base}/v1/interactions",
                           {"user": f"u{50 + n:04d}", "item": first["item"], "impression_id": first["impression_id"]})
        assert status == 201 and got["impression_outcomes"]["recorded"] == 1, got
    seen: set[str] = set()
    for _ in range(6):  # one user, requests spread over both workers: never the same item twice
        status, body = call(f"{base}/v1/users/u0070/recommendations?k=6")
        items = {r["item"] for r in body["recommendations"]}
        assert status == 200 and len(items) == 6 and not items & seen, (items, seen)
        seen |= items
        time.sleep(0.6)  # the serving worker writes its impressions every quarter of a second
    status, body = call(f"{base}/v1/users/u0070/recommendations?k=6")
    foreign = body["recommendations"][0]
    status, got = call(f"{base}/v1/interactions",
                       {"user": "u0071", "item": foreign["item"], "impression_id": foreign["impression_id"]})
    assert status == 422 and got["error"]["code"] == "impression_mismatch"
