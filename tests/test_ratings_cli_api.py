"""``kgrec predict`` and ``GET /v1/users/{id}/ratings`` are one read path: the same bundle gives the
same numbers. Ratings arrive as CSV weights (``kgrec load csv`` without a rating column), trust as
``social.csv``; unknown users and items get the baseline and say so; bad input is a 400 naming the
parameter; a bundle without a rating model says so. Rating models never serve lists."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.cli import main
from tests.rating_graphs import planted_ratings

TRAIN = ["--no-tune", "--seed", "7", "--set", "svdpp.n_iter=30", "--set", "trustsvd.n_iter=30",
         "--set", "svdpp.serve_dim=8", "--set", "trustsvd.serve_dim=8"]


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bundle with svdpp, trustsvd and itemcf trained through the CLI on a planted graph whose
    ratings are CSV weights; a bundle without rating models; and the store's folder."""
    root = tmp_path_factory.mktemp("ratings")
    g = planted_ratings(users=60, items=50, mean_ratings=12, trust="informative", seed=9)
    data = root / "csv"
    data.mkdir()
    with (data / "interactions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user", "item", "weight"])
        w.writerows((u, i, r) for u, i, r, _ in g.rows)
    with (data / "social.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user", "friend"])
        w.writerows((f.user, f.friend) for f in g.records.follows)
    store = f"memory://{root / 'graph'}"
    _invoke("load", "csv", "--path", str(data), "--store", store)
    _invoke("train", "--store", store, "--models", "itemcf,svdpp,trustsvd", "--out", str(root / "b"), *TRAIN)
    _invoke("train", "--store", store, "--models", "itemcf", "--out", str(root / "plain"), "--no-tune")
    return root / "b", root / "plain", root / "graph"


def _client(bundle: Path, store: Path):  # Flask's test client
    return create_app(Settings(bundle=str(bundle), store=f"memory://{store}")).test_client()


PAIRS = [("u0001", "i0003"), ("u0001", "i0010"), ("u0002", "i0003"), ("nobody", "i0003"), ("u0001", "nothing"),
         ("nobody", "nothing")]


def _predict(bundle: Path, tmp_path: Path, *extra: str) -> list[dict[str, str]]:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in PAIRS), encoding="utf-8")
    out = tmp_path / "out.csv"
    _invoke("predict", "--bundle", str(bundle), "--pairs", str(pairs), "--output", str(out), *extra)
    with out.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("model", [None, "svdpp", "trustsvd"])
def test_cli_and_api_give_the_same_numbers(bundles: tuple[Path, Path, Path], tmp_path: Path,
                                           model: str | None) -> None:
    bundle, _, store = bundles
    rows = _predict(bundle, tmp_path, *(["--model", model] if model else []))
    assert [(r["user"], r["item"]) for r in rows] == PAIRS
    assert list(rows[0]) == ["user", "item", "rating", "model", "baseline"]
    assert [r["baseline"] for r in rows] == ["", "", "", "unknown user", "unknown item", "unknown user and item"]
    client = _client(bundle, store)
    for user in ("u0001", "u0002", "nobody"):
        asked = [i for u, i in PAIRS if u == user]
        suffix = f"&model={model}" if model else ""
        resp = client.get(f"/v1/users/{user}/ratings?items={','.join(asked)}{suffix}")
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        cli = [r for r in rows if r["user"] == user]
        assert body["model"] == cli[0]["model"] and (model is None or body["model"] == model)
        assert [a["item"] for a in body["ratings"]] == asked
        assert [a["rating"] for a in body["ratings"]] == [float(r["rating"]) for r in cli]
        assert [a["baseline"] or "" for a in body["ratings"]] == [r["baseline"] for r in cli]
        for a in body["ratings"]:
            e = a["explanation"]
            parts = (e["global_mean"] + e["user_bias"] + e["item_bias"] + e["taste"] + e["co_rated_rest"]
                     + e["trusted_rest"] + e["clipped"] + sum(p["contribution"] for p in e["co_rated"])
                     + sum(p["contribution"] for p in e["trusted"]))
            assert abs(parts - a["rating"]) < 1e-9
            assert len(e["co_rated"]) <= 3 and all("item" in p for p in e["co_rated"])


def test_bad_input_is_a_400_naming_the_parameter(bundles: tuple[Path, Path, Path]) -> None:
    bundle, _, store = bundles
    client = _client(bundle, store)
    for query, field in (("", "items"), ("?items=", "items"), ("?items=,,", "items"),
                         ("?items=" + ",".join(f"i{n}" for n in range(101)), "items"),
                         ("?items=i0001&model=itemcf", "model"), ("?items=i0001&model=nope", "model"),
                         ("?items=%2E%2E", "items")):
        resp = client.get(f"/v1/users/u0001/ratings{query}")
        assert resp.status_code == 400, (query, resp.get_json())
        assert resp.get_json()["error"]["field"] == field, (query, resp.get_json())


def test_without_a_rating_model(bundles: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, plain, store = bundles
    resp = _client(plain, store).get("/v1/users/u0001/ratings?items=i0001")
    assert resp.status_code == 404 and "no model that predicts ratings" in resp.get_json()["error"]["message"]
    pairs = tmp_path / "p.csv"
    pairs.write_text("user,item\nu0001,i0001\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["predict", "--bundle", str(plain), "--pairs", str(pairs)])
    assert result.exit_code == 1 and "no model that predicts ratings" in result.output


def test_a_bad_pairs_file_is_refused(bundles: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, _, _ = bundles
    for text, message in (("who,what\nu1,i1\n", "must name user and item"), ("user,item\nu1,\n", "line 2")):
        pairs = tmp_path / "p.csv"
        pairs.write_text(text, encoding="utf-8")
        result = CliRunner().invoke(main, ["predict", "--bundle", str(bundle), "--pairs", str(pairs)])
        assert result.exit_code == 1 and message in result.output, result.output


def test_rating_models_serve_no_lists(bundles: tuple[Path, Path, Path]) -> None:
    bundle, _, store = bundles
    client = _client(bundle, store)
    body = client.get("/v1/users/u0001/recommendations?k=5").get_json()
    assert body["recommendations"] and {r["source"] for r in body["recommendations"]} <= {"itemcf", "popularity"}
    assert client.get("/v1/users/u0001/recommendations?model=svdpp").status_code == 400
    models = client.get("/v1/models").get_json()
    assert "svdpp" not in models["chain"]
