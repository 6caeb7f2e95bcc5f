"""``kgrec train`` tunes on the graph it is given and records the choice in the bundle's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.store_factory import open_store
from kgrec.loaders.ingest import write_records
from kgrec.loaders.synthetic import SyntheticGraph
from kgrec.recommenders.bundle.model_bundle import Bundle
from kgrec.recommenders.tuning.tuner import TuningResult

COMPONENTS = '["itemcf", "usercf", "popularity"]'


@pytest.fixture(scope="module")
def store_url(synthetic: SyntheticGraph, tmp_path_factory) -> str:
    url = f"memory://{tmp_path_factory.mktemp('tune') / 'graph'}"
    with open_store(url) as store:
        write_records(store, synthetic.records)
    return url


def train(store_url: str, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(main, ["train", "--store", store_url, "--models", "hybrid,itemcf,usercf",
                                       "--out", str(out), "--seed", "3", "--set", f"hybrid.components={COMPONENTS}",
                                       "--set", "hybrid.candidates=30", *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def tuned_bundle(store_url: str, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bundles") / "tuned"
    return out, train(store_url, out, "--tune-budget", "4", "--set", "usercf.weighting=cosine")


def test_the_manifest_records_the_search_and_the_choice(tuned_bundle: tuple[Path, str]) -> None:
    out, output = tuned_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    tuning = manifest["tuning"]
    assert set(tuning["models"]) == {"itemcf", "usercf"} and tuning["seed"] == 3 and tuning["budget_s"] == 4
    configs = {m["name"]: m["config"] for m in manifest["models"]}
    for name, rec in tuning["models"].items():
        assert {"weighting", "shrink", "neighbours"} <= set(rec["space"])
        assert len(rec["trials"]) == rec["planned"] > 1
        assert all(t["state"] in ("complete", "pruned", "failed") for t in rec["trials"])
        assert rec["best_ndcg"] == max(t["ndcg"] for t in rec["trials"] if t["ndcg"] is not None)
        assert all(configs[name][k] == v for k, v in rec["chosen"].items())  # what was chosen is what was fitted
        assert configs["hybrid"]["component_configs"][name] == rec["chosen"]
    assert all(t["params"]["weighting"] == "cosine" for t in tuning["models"]["usercf"]["trials"])  # --set holds
    hybrid = manifest["hybrid"]
    assert hybrid["serve"] in ("ranker", "component") and hybrid["reason"]
    assert set(hybrid["components"]) == {"itemcf", "usercf", "popularity"}
    assert set(hybrid["rankers"]) == {"logistic", "lambdarank"}
    assert "default" in output and "chosen" in output and f"hybrid: {hybrid['reason']}" in output
    assert all(name in output for name in ("itemcf", "usercf"))


def test_the_manifest_round_trips(tuned_bundle: tuple[Path, str]) -> None:
    out, _ = tuned_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    bundle = Bundle.load(out)
    assert bundle.manifest == manifest
    assert TuningResult.from_json(manifest["tuning"]).to_json() == manifest["tuning"]
    assert bundle.models["hybrid"].selection.to_json() == manifest["hybrid"]
    result = CliRunner().invoke(main, ["recommend", "--bundle", str(out), "--user", "u0005", "--model", "hybrid"])
    assert result.exit_code == 0 and "from hybrid" in result.output


def test_same_seed_same_bundle_choice(store_url: str, tuned_bundle: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = tuned_bundle
    train(store_url, tmp_path / "again", "--tune-budget", "4", "--set", "usercf.weighting=cosine")
    first = json.loads((out / "manifest.json").read_text())
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert again["models"] == first["models"] and again["hybrid"] == first["hybrid"]
    for name, rec in first["tuning"]["models"].items():
        assert [(t["params"], t["ndcg"]) for t in again["tuning"]["models"][name]["trials"]] == [
            (t["params"], t["ndcg"]) for t in rec["trials"]]


def test_no_tune_keeps_the_defaults(store_url: str, tmp_path: Path) -> None:
    train(store_url, tmp_path / "plain", "--no-tune")
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert manifest["tuning"] == {"tuned": False}
    configs = {m["name"]: m["config"] for m in manifest["models"]}
    assert configs["hybrid"]["component_configs"] == {}
    assert configs["itemcf"]["shrink"] == 10.0 and configs["usercf"]["neighbours"] == 50
