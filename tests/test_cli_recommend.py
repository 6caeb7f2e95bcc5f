"""``kgrec train`` and ``kgrec recommend`` end to end on an embedded store."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.store_factory import open_store
from kgrec.loaders.ingest import write_records
from kgrec.loaders.synthetic import SyntheticGraph


@pytest.fixture(scope="module")
def bundle(synthetic: SyntheticGraph, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    url = f"memory://{root / 'graph'}"
    with open_store(url) as store:
        write_records(store, synthetic.records)
    out = root / "bundle"
    result = CliRunner().invoke(main, ["train", "--store", url, "--models", "graph_walk,social", "--no-tune",
                                       "--out", str(out), "--seed", "7", "--set", "graph_walk.beta=0.4"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["graph_walk", "social", "popularity"]
    assert manifest["models"][0]["config"]["beta"] == 0.4
    again = CliRunner().invoke(main, ["train", "--store", url, "--models", "graph_walk", "--out", str(out)])
    assert again.exit_code != 0 and "--force" in again.output
    return out


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_one_user_with_reasons(bundle: Path) -> None:
    out = run("recommend", "--bundle", str(bundle), "--user", "u0005", "--k", "3", "--explain")
    assert out.count("from graph_walk") == 3
    assert "replay: MATCH" in out


def test_batch_csv_keeps_unknown_users(bundle: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u0001\n\nnobody\n u0002 \n")
    target = tmp_path / "recs.csv"
    run("recommend", "--bundle", str(bundle), "--users", str(users), "--k", "4", "--output", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert list(rows[0]) == ["user", "item", "rank", "score", "source"]
    by_user: dict[str, list[dict]] = {}
    for r in rows:
        by_user.setdefault(r["user"], []).append(r)
    assert list(by_user) == ["u0001", "nobody", "u0002"]
    assert all(len(v) == 4 for v in by_user.values())
    assert {r["source"] for r in by_user["nobody"]} == {"popularity"}
    assert [r["rank"] for r in by_user["u0001"]] == ["1", "2", "3", "4"]


def test_batch_jsonl_with_a_chosen_model(bundle: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u0003\nghost\n")
    out = run("recommend", "--bundle", str(bundle), "--users", str(users), "--format", "jsonl",
              "--model", "social", "--explain", "--k", "2")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["user"] for x in lines] == ["u0003", "ghost"]
    assert lines[1]["known_user"] is False and lines[0]["known_user"] is True
    assert lines[0]["model"] == "social"
    first = lines[0]["recommendations"][0]
    assert first["source"] == "social" and first["rank"] == 1
    shown = sum(r["contribution"] for r in first["reasons"])
    assert abs(shown + first["omitted_contribution"] - first["score"]) < 1e-6
    assert {r["source"] for r in lines[1]["recommendations"]} == {"popularity"}


def test_bad_input_is_refused_clearly(bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    listing = str(bundle / "manifest.json")
    both = runner.invoke(main, ["recommend", "--bundle", str(bundle), "--user", "a", "--users", listing])
    assert both.exit_code != 0 and "exactly one" in both.output
    csv_explain = runner.invoke(main, ["recommend", "--bundle", str(bundle), "--users", listing, "--explain"])
    assert csv_explain.exit_code != 0 and "jsonl" in csv_explain.output
    missing = runner.invoke(main, ["recommend", "--bundle", str(tmp_path), "--user", "a"])
    assert missing.exit_code != 0 and "not a kgrec bundle" in missing.output
    unknown = runner.invoke(main, ["train", "--models", "nope", "--out", str(tmp_path / "x")])
    assert unknown.exit_code != 0 and "unknown recommender" in unknown.output
    bad_set = runner.invoke(main, ["train", "--models", "itemcf", "--set", "oops", "--out", str(tmp_path / "x")])
    assert bad_set.exit_code != 0 and "MODEL.OPTION=VALUE" in bad_set.output
