"""Batch work on a real 2-worker local Ray cluster gives exactly the single-process output,
and batch lists on either engine are exactly what the API answers the same request.

One Ray session for the module (starting one costs seconds); the commands reuse it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.cli import main
from kgrec.graph.recommendation_writeback import recommendation_rows
from kgrec.graph.records import Dislike, GraphRecords, Interaction
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import SyntheticGraph
from kgrec.recommenders.batch.batch_tasks import ModelOptions, load_models, own_rows_block, pack_models, ranked_block
from kgrec.recommenders.batch.engines import Payload
from kgrec.recommenders.batch.ray_engine import RayEngine
from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle
from kgrec.recommenders.evaluation.offline_evaluation import fit_all, score_fitted
from kgrec.recommenders.evaluation.splits import random_holdout
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.own_items import OwnItems
from kgrec.recommenders.serving.server_loading import load_server
from tests.api_fixtures import API_KEY, fill_store

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    from kgrec.embeddings.ray_cluster import ray_session

    with ray_session(cpus=2):
        yield


@pytest.fixture(scope="module")
def bundle_dir(snapshot: GraphSnapshot, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fitted = fit_models(snapshot, ["graph_walk", "itemcf", "social"], seed=3)
    return save_bundle(tmp_path_factory.mktemp("ray") / "bundle", snapshot, fitted, seed=3)


def _run(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


def test_recommend_on_ray_is_byte_identical(bundle_dir: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u0010\nnobody\nu0003\nu0010\n")
    for fmt, selection in (("csv", ["--all-users"]), ("jsonl", ["--users", str(users), "--explain"])):
        common = ["recommend", "--bundle", str(bundle_dir), *selection, "--k", "5", "--format", fmt]
        _run(*common, "--output", str(tmp_path / f"one.{fmt}"))
        _run(*common, "--output", str(tmp_path / f"ray.{fmt}"), "--engine", "ray", "--workers", "2")
        one, on_ray = (tmp_path / f"one.{fmt}").read_bytes(), (tmp_path / f"ray.{fmt}").read_bytes()
        assert one == on_ray
    rows = (tmp_path / "one.csv").read_text().splitlines()
    snapshot_users = list(Bundle.load(bundle_dir).snapshot.users.ids)
    assert len(rows) == 1 + 5 * len(snapshot_users)
    assert list(dict.fromkeys(r.split(",")[0] for r in rows[1:])) == snapshot_users
    lines = [json.loads(x) for x in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert [x["user"] for x in lines] == ["u0010", "nobody", "u0003", "u0010"]
    assert all(item["reasons"] for x in lines for item in x["recommendations"])


def test_blocks_of_three_on_two_actors_come_back_in_the_users_order(bundle_dir: Path, snapshot: GraphSnapshot) -> None:
    users = [*reversed(snapshot.users.ids), "ghost"]
    own = OwnItems(load_server(bundle_dir), "itemcf")
    expected = [list(recommendation_rows(own, [u], 4)) for u in users]
    assert expected[-1] == [] and all(len(rows) == 4 for rows in expected[:-1])
    with RayEngine(Payload(load=load_server, directory=bundle_dir), workers=2, block=3) as engine:
        got = list(engine.run(own_rows_block, ModelOptions("itemcf", 4), users))
        assert [u for u, _ in got] == users
        assert [rows for _, rows in got] == expected
        with pytest.raises(ray.exceptions.RayTaskError, match="'nope' is not in the bundle"):
            list(engine.run(own_rows_block, ModelOptions("nope", 4), users[:2]))


@pytest.fixture(scope="module")
def live(synthetic: SyntheticGraph, snapshot: GraphSnapshot,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, GraphRecords]:
    """A bundle and the store after it: new plays, a dislike, hidden items and a newcomer."""
    directory = tmp_path_factory.mktemp("live")
    bundle = save_bundle(directory / "bundle", snapshot, fit_models(snapshot, ["itemcf", "social"], seed=3), seed=3)
    url = fill_store(synthetic.records, directory / "store")
    items = snapshot.items.ids
    since = GraphRecords(interactions=[Interaction(snapshot.users.ids[1], items[5], 4.0),
                                       Interaction("newcomer", items[7], 2.0), Interaction("newcomer", items[8], 2.0)],
                         dislikes=[Dislike(snapshot.users.ids[2], items[9])])
    with open_store(url) as store, store.exclusive():
        store.load(since)
        store.set_hidden([items[10], items[11]], True)
    return bundle, url, since


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_batch_lists_are_what_the_api_answers(live: tuple[Path, str, GraphRecords], snapshot: GraphSnapshot,
                                              tmp_path: Path, engine: str) -> None:
    """For each user, model, k and filter, a batch list (either engine, the store's state read
    once per user) has the API's items, scores, order and sources — the fallback included."""
    bundle, url, since = live
    # Impressions off: an API list logs no skips that would change the next model's list (batch logs none).
    client = create_app(Settings(bundle=str(bundle), store=url, api_key=API_KEY, impressions=False)).test_client()
    users = [*snapshot.users.ids[:6], "newcomer", "ghost"]
    (tmp_path / "users.txt").write_text("\n".join(users))
    on = ["--engine", engine, *(["--workers", "2"] if engine == "ray" else [])]
    fell_back = 0
    for model, query in ((None, ""), ("social", "&tags=t-jazz"), ("itemcf", "&not_tags=t-jazz,t-metal")):
        chosen = ["--model", model] if model else []
        filters = [a for part in query.strip("&").split("&") if part
                   for a in (f"--{part.split('=')[0].replace('_', '-')}", part.split("=")[1])]
        args = ["recommend", "--bundle", str(bundle), "--store", url, "--users", str(tmp_path / "users.txt"),
                "--k", "8", "--format", "jsonl", "--explain", *chosen, *filters, *on]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        lines = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
        assert [x["user"] for x in lines] == users
        for line in lines:
            api = f"/v1/users/{line['user']}/recommendations?k=8&explain=true{query}"
            assert client.get(api + (f"&model={model}" if model else "")).get_json() == line
            fell_back += any(r["source"] != line["model"] for r in line["recommendations"])
    assert fell_back > 0
    served = {x["user"]: [r["item"] for r in x["recommendations"]] for x in lines}
    items = snapshot.items.ids
    assert not {items[10], items[11]} & {i for got in served.values() for i in got}
    assert items[9] not in served[since.dislikes[0].user] and items[5] not in served[snapshot.users.ids[1]]

    result = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--store", url, "--all-users",
                                       "--k", "5", *on])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))[1:]
    for user in snapshot.users.ids:
        body = client.get(f"/v1/users/{user}/recommendations?k=5").get_json()
        assert [r[1:] for r in rows if r[0] == user] == [
            [r["item"], str(r["rank"]), f"{r['score']:.6g}", r["source"]] for r in body["recommendations"]]
    assert len(rows) == 5 * len(snapshot.users.ids)


def test_evaluation_lists_on_ray_match_one_process(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    split = random_holdout(snapshot, fraction=0.2, seed=5, min_interactions=5)
    fitted = fit_all(split, {"graph_walk": create("graph_walk"), "popularity": create("popularity")})
    here = score_fitted(split, fitted, k=5)
    models = {name: model for name, (model, _) in fitted.items()}
    payload = Payload(load=load_models, directory=pack_models(tmp_path, split.train, models))
    with RayEngine(payload, workers=2) as engine:
        def top(name: str, users: Sequence[str], k: int) -> Iterator[list[str]]:
            return (items for _, items in engine.run(ranked_block, ModelOptions(name, k), users))

        on_ray = score_fitted(split, fitted, k=5, top_lists=top)
    assert [r.metrics for r in on_ray.results] == [r.metrics for r in here.results]
    assert here.results[0].metrics["ndcg@5"] > here.results[1].metrics["ndcg@5"]
