"""``kgrec recommend`` and the API are one read path: for every model of a bundle, for known,
new and unknown users, with feedback, dislikes, hidden items and tag filters in the store,
the CLI's JSON lines are exactly the API's response bodies — on both stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.cli import main
from kgrec.graph.records import Dislike, Interaction
from kgrec.graph.store import GraphStore
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import SyntheticGraph, generate
from tests.api_fixtures import API_KEY

#: Every registered recommender but kge (its CLI and API answers are compared in test_kge).
MODELS = "graph_walk,itemcf,usercf,als,bpr,association,content,social,hybrid"
SETTINGS = ["--set", "als.iterations=3", "--set", "bpr.iterations=20",
            "--set", 'hybrid.components=["graph_walk","itemcf","social","popularity"]']


@pytest.fixture(scope="module")
def graph() -> SyntheticGraph:
    return generate(users=60, items=90, seed=11)


@pytest.fixture(scope="module", params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store_url(request: pytest.FixtureRequest, graph: SyntheticGraph,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = (f"memory://{tmp_path_factory.mktemp('same') / 'g'}" if request.param == "memory"
           else request.getfixturevalue("neo4j_uri"))
    with open_store(url) as store:
        store.clear()
        store.load(graph.records)
    yield url
    if request.param == "neo4j":
        with open_store(url) as store:
            store.clear()


@pytest.fixture(scope="module")
def bundle(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b"
    result = CliRunner().invoke(main, ["train", "--store", store_url, "--models", MODELS, "--out", str(out),
                                       "--seed", "3", "--no-tune", *SETTINGS])  # tuning has its own tests
    assert result.exit_code == 0, result.output
    # What happened after the bundle: new feedback, a dislike, a hidden item, a brand-new user.
    with open_store(store_url) as store:
        snap = store.snapshot()
        u1, u2 = snap.users.ids[1], snap.users.ids[2]
        items = snap.items.ids
        _write(store, lambda s: s.upsert_interactions([Interaction(u1, items[5], 4.0), Interaction(u1, items[6], 1.0),
                                                      Interaction("newcomer", items[7], 2.0),
                                                      Interaction("newcomer", items[8], 2.0)]))
        _write(store, lambda s: s.upsert_dislikes([Dislike(u2, items[9])]))
        _write(store, lambda s: s.set_hidden([items[10], items[11]], True))
    return out


def _write(store: GraphStore, fn) -> None:  # type: ignore[no-untyped-def]
    with store.exclusive():
        fn(store)


@pytest.mark.parametrize("query", ["", "&tags=t-jazz,t-popular", "&not_tags=t-jazz,t-bright-metal", "&q=jazz"],
                         ids=["plain", "tags", "not_tags", "q"])
def test_cli_lines_equal_api_bodies(bundle: Path, store_url: str, tmp_path: Path, graph: SyntheticGraph,
                                    query: str) -> None:
    users = [graph.records.users[0].id, graph.records.users[1].id, graph.records.users[2].id, "newcomer", "ghost"]
    (tmp_path / "users.txt").write_text("\n".join(users))
    # Impressions off: the API's lists carry no impression ids and leave no skips for the next model's list.
    app = create_app(Settings(bundle=str(bundle), store=store_url, api_key=API_KEY, impressions=False))
    client = app.test_client()
    filters = dict(part.split("=") for part in query.strip("&").split("&") if part)
    cli_filters = [a for k, v in filters.items() for a in (f"--{k.replace('_', '-')}", v)]
    models = [None, *MODELS.split(","), "popularity"]
    compared = 0
    for model in models:
        args = ["recommend", "--bundle", str(bundle), "--store", store_url, "--users", str(tmp_path / "users.txt"),
                "--format", "jsonl", "--explain", "--k", "6", *cli_filters, *(["--model", model] if model else [])]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        lines = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
        assert [x["user"] for x in lines] == users
        assert all(len(x["recommendations"]) == 6 for x in lines)
        for line in lines:
            url = f"/v1/users/{line['user']}/recommendations?k=6&explain=true{query}"
            url += f"&model={model}" if model else ""
            api = client.get(url).get_json()
            assert api == line, (model, line["user"])
            compared += 1
    assert compared == len(models) * len(users)


def test_store_state_shapes_both(bundle: Path, store_url: str, graph: SyntheticGraph) -> None:
    """The feedback written after the bundle shows on both paths: the new items and the dislike are
    gone, hidden items appear nowhere, the newcomer is served by models folding in their history."""
    with open_store(store_url) as store:
        snap = store.snapshot()
    items = snap.items.ids
    client = create_app(Settings(bundle=str(bundle), store=store_url)).test_client()
    seen_by = {}
    for user in (snap.users.ids[1], snap.users.ids[2], "newcomer"):
        body = client.get(f"/v1/users/{user}/recommendations?k=20&model=itemcf").get_json()
        seen_by[user] = [r["item"] for r in body["recommendations"]]
        assert not {items[10], items[11]} & set(seen_by[user])
    assert not {items[5], items[6]} & set(seen_by[snap.users.ids[1]])
    assert items[9] not in seen_by[snap.users.ids[2]]
    newcomer = client.get("/v1/users/newcomer/recommendations?k=5&model=itemcf").get_json()
    assert newcomer["known_user"] and {r["source"] for r in newcomer["recommendations"]} == {"itemcf"}
