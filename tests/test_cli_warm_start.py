"""``kgrec train --warm-start OLD_BUNDLE`` end to end: the new bundle's manifest records which
bundle it started from, what each model did and why, and the CLI says it."""

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
from tests.warm_graphs import older

SMALL = ("--set", "als.factors=8", "--set", "multvae.hidden_dim=32", "--set", "multvae.latent_dim=8",
         "--set", "multvae.epochs=12", "--set", "multvae.batch_size=32", "--set", "multvae.threads=1")


def kgrec(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def stores(synthetic: SyntheticGraph, tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("warm")
    urls = (f"memory://{root / 'old'}", f"memory://{root / 'new'}")
    for url, records in zip(urls, (older(synthetic.records, share=0.1)[0], synthetic.records), strict=True):
        with open_store(url) as store:
            write_records(store, records)
    return urls


@pytest.fixture(scope="module")
def bundles(stores: tuple[str, str], tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("bundles")
    old_url, new_url = stores
    kgrec("train", "--store", old_url, "--models", "als,multvae", "--out", str(root / "b0"), "--seed", "3",
          "--no-tune", *SMALL)
    output = kgrec("train", "--store", new_url, "--models", "als,multvae", "--out", str(root / "b1"), "--seed", "3",
                   "--no-tune", "--warm-start", str(root / "b0"))
    return root / "b0", root / "b1", output


def test_the_manifest_records_the_warm_start(bundles: tuple[Path, Path, str]) -> None:
    b0, b1, output = bundles
    old, new = Bundle.load(b0), Bundle.load(b1)
    record = new.manifest["warm_start"]
    assert record["from"] == str(b0) and record["digest"] == old.seal.digest
    assert record["fingerprint"] == old.snapshot.fingerprint != new.snapshot.fingerprint
    assert record["warm"] == ["als", "multvae"] and record["cold"] == []
    for name in ("als", "multvae"):
        entry = record["models"][name]
        assert entry["decision"] == "warm" and entry["chain"] == 1 and entry["reason"].startswith("warm start")
        assert entry["curve"][0][0] == 0 and entry["epochs_trained"] == len(entry["curve"]) - 1 + entry["final_epochs"]
        assert entry["new"]["users"] > 0 and entry["init"]
        assert f"{name}: warm start" in output
    assert f"warm start from {b0}" in output
    configs = {m["name"]: m["config"] for m in new.manifest["models"]}
    assert configs["multvae"]["latent_dim"] == 8 and configs["als"]["factors"] == 8  # the old bundle's options
    assert new.models["multvae"].recommend(new.snapshot.users.ids[0], 5)


def test_a_changed_shape_trains_cold_and_says_so(bundles: tuple[Path, Path, str], stores: tuple[str, str],
                                                 tmp_path) -> None:
    _, b1, _ = bundles
    output = kgrec("train", "--store", stores[1], "--models", "als,multvae", "--out", str(tmp_path / "b2"),
                   "--seed", "3", "--tune-budget", "2", "--warm-start", str(b1), "--set", "multvae.latent_dim=4")
    manifest = json.loads((tmp_path / "b2" / "manifest.json").read_text())
    record = manifest["warm_start"]
    assert record["cold"] == ["multvae"] and record["warm"] == ["als"]
    assert "its shape changed: latent_dim 8 -> 4" in record["models"]["multvae"]["reason"]
    assert "multvae: trained cold: its shape changed" in output
    assert record["models"]["als"]["chain"] == 2  # the second warm start in a row
    assert manifest["tuning"] == {"tuned": False}  # warm-started models keep their options, untuned


def test_warm_options_without_a_bundle_are_usage_errors(stores: tuple[str, str], tmp_path) -> None:
    for args in (["--warm-check"], ["--warm-start", str(tmp_path), "--warm-tag-names"],
                 ["--warm-start", str(tmp_path / "missing")]):
        result = CliRunner().invoke(main, ["train", "--store", stores[1], "--out", str(tmp_path / "b"), *args])
        assert result.exit_code == 2, result.output
    result = CliRunner().invoke(main, ["train", "--store", stores[1], "--models", "als", "--out", str(tmp_path / "b"),
                                       "--warm-start", str(tmp_path)])
    assert result.exit_code == 1 and "--warm-start" in result.output and "not a kgrec bundle" in result.output
