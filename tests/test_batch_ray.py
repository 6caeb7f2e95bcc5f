"""Batch work on a real 2-worker local Ray cluster gives exactly the single-process output.

One Ray session for the module (starting one costs seconds); the commands reuse it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from graph.snapshot import GraphSnapshot
from graph.writeback import recommendation_rows
from recommenders.batch import Payload
from recommenders.batch_ray import RayEngine
from recommenders.batch_tasks import ModelOptions, load_models, model_rows_block, pack_models, ranked_block
from recommenders.bundle import Bundle, fit_models, save_bundle
from recommenders.evaluation import fit_all, score_fitted
from recommenders.registry import create
from recommenders.splits import random_holdout

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    from recommenders.ray_session import ray_session

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
    assert all(item["reasons"] for x in lines for item in x["items"])


def test_blocks_of_three_on_two_actors_come_back_in_the_users_order(bundle_dir: Path, snapshot: GraphSnapshot) -> None:
    users = [*reversed(snapshot.users.ids), "ghost"]
    bundle = Bundle.load(bundle_dir)
    expected = [list(recommendation_rows(bundle.models["itemcf"], [u], 4)) for u in users]
    with RayEngine(Payload(load=Bundle.load, directory=bundle_dir), workers=2, block=3) as engine:
        got = list(engine.run(model_rows_block, ModelOptions("itemcf", 4), users))
        assert [u for u, _ in got] == users
        assert [rows for _, rows in got] == expected
        with pytest.raises(KeyError, match="nope"):
            list(engine.run(model_rows_block, ModelOptions("nope", 4), users[:2]))


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
