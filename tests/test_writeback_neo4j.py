"""Write-back of recommendations into a real Neo4j: replace semantics, idempotency, isolation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.recommendation_writeback import (
    REPLACE_RECOMMENDATIONS,
    WritebackError,
    delete_recommendations,
    recommendation_rows,
    write_recommendations,
)
from kgrec.graph.records import Dislike, Interaction
from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from tests.neo4j_fixtures import loaded_neo4j

pytestmark = pytest.mark.neo4j

READ_RECS = """
MATCH (u:User)-[r:RECOMMENDED]->(i:Item)
RETURN r.model AS model, u.id AS user, i.id AS item, r.score AS score, r.rank AS rank, r.at AS at
ORDER BY model, user, rank
"""


@pytest.fixture(scope="module")
def graph():
    return generate(users=30, items=40, seed=3)


@pytest.fixture
def store(neo4j_uri: str, graph) -> Iterator[object]:
    with loaded_neo4j(neo4j_uri, graph.records) as s:
        yield s


def recs(store, model: str | None = None) -> dict[tuple[str, str], list[tuple[str, float, int]]]:
    """(model, user) -> [(item, score, rank)] as stored."""
    out: dict[tuple[str, str], list[tuple[str, float, int]]] = {}
    for r in store.run_read(READ_RECS, {}):
        if model is None or r["model"] == model:
            out.setdefault((r["model"], r["user"]), []).append((r["item"], r["score"], r["rank"]))
    return out


def rows_for(users: list[str], items: list[str], shift: int, n: int = 5) -> list[tuple[str, str, float, int]]:
    """n items per user, chosen by ``shift`` so two calls can give different lists."""
    rows = []
    for u_idx, user in enumerate(users):
        for rank in range(1, n + 1):
            item = items[(u_idx * 3 + rank + shift) % len(items)]
            rows.append((user, item, 1.0 / rank + shift, rank))
    return rows


def as_stored(model: str, rows) -> dict[tuple[str, str], list[tuple[str, float, int]]]:
    out: dict[tuple[str, str], list[tuple[str, float, int]]] = {}
    for user, item, score, rank in rows:
        out.setdefault((model, user), []).append((item, score, rank))
    return out


def test_write_then_rewrite_is_idempotent(store, graph) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    rows = rows_for(users, items, shift=0)
    first = write_recommendations(store, "m", rows, at=1)
    assert (first.created, first.deleted, first.skipped, first.users) == (len(rows), 0, 0, len(users))
    assert recs(store) == as_stored("m", rows)
    second = write_recommendations(store, "m", rows, at=2)
    assert (second.created, second.deleted) == (len(rows), len(rows))
    assert recs(store) == as_stored("m", rows)
    assert {r["at"] for r in store.run_read(READ_RECS, {})} == {2}


def test_rewrite_replaces_only_that_models_lists_of_those_users(store, graph) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    old_m = rows_for(users, items, shift=0)
    other = rows_for(users, items, shift=7)
    write_recommendations(store, "m", old_m)
    write_recommendations(store, "other", other)
    changed = users[:4]
    new_rows = rows_for(changed, items, shift=2, n=3)
    result = write_recommendations(store, "m", new_rows)
    assert (result.users, result.deleted, result.created) == (4, 4 * 5, 4 * 3)
    expected = as_stored("m", [r for r in old_m if r[0] not in changed] + new_rows)
    assert recs(store, "m") == expected
    assert recs(store, "other") == as_stored("other", other)


def test_users_without_rows_lose_their_stale_list(store, graph) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    write_recommendations(store, "m", rows_for(users, items, shift=0))
    result = write_recommendations(store, "m", [], users=users[:2])
    assert (result.deleted, result.created) == (10, 0)
    assert {u for (_m, u) in recs(store, "m")} == set(users[2:])


def test_small_batches_never_split_a_user(store, graph) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    rows = rows_for(users, items, shift=1)
    result = write_recommendations(store, "m", rows, batch_size=7)
    assert result.batches == len(users)  # 5 rows a user: each batch holds one whole user
    assert recs(store, "m") == as_stored("m", rows)
    again = write_recommendations(store, "m", rows, batch_size=12)
    assert again.batches == len(users) // 2
    assert recs(store, "m") == as_stored("m", rows)


def test_rows_naming_missing_nodes_are_skipped_and_counted(store, graph) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    rows = [*rows_for(users[:2], items, shift=0), (users[0], "no-such-item", 0.1, 6), ("ghost", items[0], 1.0, 1)]
    result = write_recommendations(store, "m", rows)
    assert (result.created, result.skipped) == (10, 2)
    assert recs(store, "m") == as_stored("m", rows[:10])
    assert store.run_read("MATCH (u:User {id: 'ghost'}) RETURN count(u) AS n", {})[0]["n"] == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("u", "i", 1.0, 0), "rank must be an integer >= 1"),
        (("u", "i", float("nan"), 1), "score must be finite"),
        (("", "i", 1.0, 1), "empty user or item"),
    ],
)
def test_bad_rows_are_refused_before_anything_is_written(store, graph, bad, message) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    write_recommendations(store, "m", rows_for(users, items, shift=0))
    before = recs(store)
    with pytest.raises(WritebackError, match=message):
        write_recommendations(store, "m", [*rows_for(users, items, shift=3), bad])
    assert recs(store) == before


def test_duplicate_items_for_a_user_are_refused(store, graph) -> None:
    with pytest.raises(WritebackError, match="recommended twice"):
        write_recommendations(store, "m", [("u0000", "i0001", 1.0, 1), ("u0000", "i0001", 0.5, 2)])


def test_delete_and_create_share_one_transaction(store, graph) -> None:
    """A batch whose create fails leaves the old list in place: the delete rolled back with it."""
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    rows = rows_for(users, items, shift=0)
    write_recommendations(store, "m", rows)
    poisoned = {"user": users[0], "item": items[0], "score": {"not": "a property value"}, "rank": 1}
    with pytest.raises(Exception):  # noqa: B017 - the server's own error type is what we provoke
        store.run_write(REPLACE_RECOMMENDATIONS, {"users": users[:3], "rows": [poisoned], "model": "m", "at": 9})
    assert recs(store, "m") == as_stored("m", rows)


def test_delete_recommendations_removes_one_model(store, graph) -> None:
    users = [u.id for u in graph.records.users]
    items = [i.id for i in graph.records.items]
    write_recommendations(store, "m", rows_for(users, items, shift=0))
    write_recommendations(store, "other", rows_for(users, items, shift=1))
    assert delete_recommendations(store, "m", batch_size=40) == len(users) * 5
    assert set(m for (m, _u) in recs(store)) == {"other"}


def test_cli_writes_a_bundle_models_top_k(store, graph, neo4j_uri: str, tmp_path: Path) -> None:
    snap = build_snapshot(graph.records)
    models = fit_models(snap, ["itemcf"], seed=1)
    bundle = save_bundle(tmp_path / "bundle", snap, models, seed=1)
    args = ["writeback", "--bundle", str(bundle), "--model", "itemcf", "--k", "4", "--store", neo4j_uri, "--json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])["recommendations"]
    expected = list(recommendation_rows(models["itemcf"], snap.users.ids, 4))
    assert summary["created"] == len(expected) and summary["skipped"] == 0
    stored = recs(store, "itemcf")
    assert {k: [(i, r) for i, _s, r in v] for k, v in stored.items()} == {
        k: [(i, r) for i, _s, r in v] for k, v in as_stored("itemcf", expected).items()
    }
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.strip().splitlines()[-1])["recommendations"]["deleted"] == len(expected)
    assert len(store.run_read(READ_RECS, {})) == len(expected)


def test_cli_on_two_ray_workers_writes_what_one_process_writes(store, graph, neo4j_uri: str,
                                                                 tmp_path: Path) -> None:
    """--engine ray reads the store's state in the driver and ships it with each block: the
    same relationships as one process, dislikes and hidden items included."""
    pytest.importorskip("ray")
    snap = build_snapshot(graph.records)
    models = fit_models(snap, ["itemcf"], seed=1)
    bundle = save_bundle(tmp_path / "bundle", snap, models, seed=1)
    u0 = snap.users.ids[0]
    first = models["itemcf"].recommend(u0, 2)
    store.upsert_dislikes([Dislike(u0, first[0].item_id)])
    store.set_hidden([first[1].item_id], True)
    args = ["writeback", "--bundle", str(bundle), "--model", "itemcf", "--k", "4", "--store", neo4j_uri]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    here = recs(store, "itemcf")
    out = CliRunner().invoke(main, [*args, "--engine", "ray", "--workers", "2"])
    assert out.exit_code == 0, out.output
    on_ray = recs(store, "itemcf")
    assert on_ray == here and len(on_ray) == len(snap.users.ids)
    assert not {first[0].item_id, first[1].item_id} & {i for i, _s, _r in on_ray[("itemcf", u0)]}
    assert all(len(v) == 4 for v in on_ray.values())


def test_cli_writes_nothing_disliked_hidden_or_played_since_the_bundle(store, graph, neo4j_uri: str,
                                                                          tmp_path: Path) -> None:
    """Write-back goes through the read path with the store's state: what a user disliked or
    played after the bundle, and hidden items, are never written as recommendations."""
    snap = build_snapshot(graph.records)
    models = fit_models(snap, ["itemcf"], seed=1)
    bundle = save_bundle(tmp_path / "bundle", snap, models, seed=1)
    before = {u: [r.item_id for r in models["itemcf"].recommend(u, 4)] for u in snap.users.ids[:6]}
    u0, u1 = snap.users.ids[0], snap.users.ids[1]
    hidden = before[snap.users.ids[2]][0]
    store.upsert_dislikes([Dislike(u0, before[u0][0])])
    store.upsert_interactions([Interaction(u1, before[u1][0], 2.0)])
    store.set_hidden([hidden], True)
    args = ["writeback", "--bundle", str(bundle), "--model", "itemcf", "--k", "4", "--store", neo4j_uri, "--json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    stored = {user: [i for i, _s, _r in v] for (_m, user), v in recs(store, "itemcf").items()}
    assert before[u0][0] not in stored[u0] and before[u0][1:] == stored[u0][:3]
    assert before[u1][0] not in stored[u1] and before[u1][1:] == stored[u1][:3]
    assert all(hidden not in v for v in stored.values())
    assert all(len(v) == 4 for v in stored.values()) and len(stored) == len(snap.users.ids)


def test_cli_refuses_an_unknown_model_with_exit_2(tmp_path: Path, graph, neo4j_uri: str) -> None:
    snap = build_snapshot(graph.records)
    bundle = save_bundle(tmp_path / "bundle", snap, fit_models(snap, [], seed=1), seed=1)
    out = CliRunner().invoke(main, ["writeback", "--bundle", str(bundle), "--model", "nope", "--store", neo4j_uri])
    assert out.exit_code == 2
    assert "model 'nope' is not in the bundle" in out.output


def test_cli_needs_a_model_or_embeddings(tmp_path: Path, graph, neo4j_uri: str) -> None:
    snap = build_snapshot(graph.records)
    bundle = save_bundle(tmp_path / "bundle", snap, fit_models(snap, [], seed=1), seed=1)
    out = CliRunner().invoke(main, ["writeback", "--bundle", str(bundle), "--store", neo4j_uri])
    assert out.exit_code == 2 and "give --model M" in out.output
    out = CliRunner().invoke(main, ["writeback", "--bundle", str(bundle), "--embeddings", "--store", neo4j_uri])
    assert out.exit_code == 2 and "no 'kge' model" in out.output


def test_cli_writes_kge_vectors_that_the_cookbook_can_query(store, graph, neo4j_uri: str, tmp_path: Path) -> None:
    """A bundle with a kge model: recommendations and vectors in one command, then the
    cookbook's vector_neighbours query returns numpy's cosine neighbours."""
    pytest.importorskip("kgrec.recommenders.models.kge")  # the KGE recommender and its write-back (another module's)
    from kgrec.embeddings.vector_writeback import DROP_INDEX, INDEX_NAME, PROPERTY, numpy_neighbours
    from kgrec.graph.cypher import run
    from kgrec.graph.schema import Label

    snap = build_snapshot(graph.records)
    kge = {"dim": 8, "epochs": 2, "early_stopping": False, "progress": False, "device": "cpu"}
    models = fit_models(snap, ["kge"], seed=1, configs={"kge": kge})
    bundle = save_bundle(tmp_path / "bundle", snap, models, seed=1)
    args = ["writeback", "--bundle", str(bundle), "--model", "kge", "--k", "3", "--store", neo4j_uri, "--json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["embeddings"]["written"]["Item"] == len(graph.records.items)
    assert summary["recommendations"]["created"] == len(list(recommendation_rows(models["kge"], snap.users.ids, 3)))
    artifact = models["kge"].artifact
    for item in [i.id for i in graph.records.items[:3]]:
        expected = [(key, score) for key, score in numpy_neighbours(artifact, Label.ITEM, item, 6) if key != item][:5]
        rows = run(store, "vector_neighbours",
                   {"index": INDEX_NAME[Label.ITEM], "property": PROPERTY, "item": item, "k": 5})
        assert [r["item"] for r in rows] == [key for key, _s in expected]
        assert [r["score"] for r in rows] == pytest.approx([s for _k, s in expected], abs=1e-5)
    for label in (Label.USER, Label.ITEM, Label.TAG):
        store.run_write(DROP_INDEX[label], {})
