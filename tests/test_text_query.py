"""``q=``: the words the user is looking for now narrow and re-rank their own list (``text_query``).

Two users typing the same words get different, personal lists of matching items; every reason of
the match names a word and is a real path; a bad ``q`` is a 400 naming it (the CLI: a usage error
naming ``--q``); words no item holds give an empty list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.cli import main
from kgrec.recommenders.reason_paths import CYPHER, ITEM_TAG, path_exists
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.query import Query
from kgrec.recommenders.serving.server import Server
from kgrec.recommenders.serving.text_query import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    ItemText,
    QueryTextError,
    parse_q,
    words,
)
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle

BAD = ["", "   ", "x" * (MAX_QUERY_CHARS + 1), "!! ?", "a", " ".join(["jazz"] * (MAX_QUERY_WORDS + 1))]


@pytest.fixture(scope="module")
def server(snapshot) -> Server:
    models = {"itemcf": create("itemcf").fit(snapshot), "popularity": create("popularity").fit(snapshot)}
    return Server(snapshot, models, list(models))


def _community_users(synthetic) -> tuple[str, str]:
    """Two users of different planted communities."""
    by = synthetic.truth.user_community
    first = next(iter(by))
    return first, next(u for u, c in by.items() if c != by[first])


@pytest.mark.parametrize("raw", BAD, ids=["empty", "blank", "long", "no-word", "one-letter", "many-words"])
def test_bad_queries_are_refused(raw: str) -> None:
    with pytest.raises(QueryTextError):
        parse_q(raw)
    with pytest.raises(QueryTextError):
        Query("u0001", q=raw)


def test_words_are_folded() -> None:
    assert words("Café  DARK-jazz_2 x 42") == ["cafe", "dark", "jazz", "42"]
    assert parse_q("  dark jazz ") == "dark jazz"


def test_two_users_typing_the_same_words_get_their_own_matching_lists(server, snapshot, synthetic) -> None:
    index = ItemText(snapshot)
    match = index.scores("dark jazz")
    a, b = _community_users(synthetic)
    lists = {}
    for user in (a, b):
        served = server.recommend(Query(user, 10, q="dark jazz", explain=True))
        assert len(served) == 10
        lists[user] = [s.item for s in served]
        seen = {snapshot.items.ids[j] for j in snapshot.user_items(snapshot.users.index[user])}
        assert not seen & set(lists[user])
        assert all(match[snapshot.items.index[s.item]] > 0 for s in served)
        assert [s.score for s in served] == sorted((s.score for s in served), reverse=True)
        for s in served:
            named = [r for r in s.reasons if "“dark”" in r.text or "“jazz”" in r.text]
            assert named, f"no reason names the words for {s.item}"
            assert all(r.kind == "evidence" for r in s.reasons)
            assert all(path_exists(snapshot, r) and r.cypher in CYPHER.values() for r in s.reasons)
        assert any(r.cypher == CYPHER[ITEM_TAG] for s in served for r in s.reasons)
    assert lists[a] != lists[b]
    plain = [s.item for s in server.recommend(Query(a, 10))]
    assert plain != lists[a]


def test_words_no_item_holds_give_an_empty_list(server, synthetic) -> None:
    assert server.recommend(Query(_community_users(synthetic)[0], 10, q="zzyzx qwertyuiop")) == []


@pytest.fixture(scope="module")
def bundle_and_store(snapshot, synthetic, tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("q")
    return train_bundle(snapshot, root / "bundle"), fill_store(synthetic.records, root / "store")


@pytest.mark.parametrize("raw", BAD, ids=["empty", "blank", "long", "no-word", "one-letter", "many-words"])
def test_a_bad_q_is_a_400_naming_it_and_a_cli_usage_error(bundle_and_store, raw: str) -> None:
    bundle, store = bundle_and_store
    client = create_app(Settings(bundle=str(bundle), store=store, api_key=API_KEY),
                        server=fresh_server(bundle)).test_client()
    resp = client.get("/v1/users/u0001/recommendations", query_string={"q": raw})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == "q"
    result = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--user", "u0001", "--q", raw])
    assert result.exit_code == 2 and "--q" in result.output


def test_api_and_cli_give_the_same_answer(bundle_and_store, synthetic, tmp_path) -> None:
    bundle, store = bundle_and_store
    users = [*_community_users(synthetic), "ghost"]
    (tmp_path / "users.txt").write_text("\n".join(users))
    client = create_app(Settings(bundle=str(bundle), store=store, api_key=API_KEY, impressions=False),
                        server=fresh_server(bundle)).test_client()
    result = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--store", store, "--users",
                                       str(tmp_path / "users.txt"), "--format", "jsonl", "--explain", "--k", "5",
                                       "--model", "graph_walk", "--q", "dark jazz"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    assert [x["user"] for x in lines] == users
    for line in lines:
        api = client.get(f"/v1/users/{line['user']}/recommendations?k=5&explain=true&model=graph_walk&q=dark+jazz")
        assert api.status_code == 200 and api.get_json() == line
        assert line["recommendations"] and all(any("“" in r["text"] for r in rec["reasons"])
                                               for rec in line["recommendations"])
