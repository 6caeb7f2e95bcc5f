"""`kgrec models` lists what the registry holds, and `kgrec train` refuses a bad option value as a
usage error (exit 2) naming the option, before it reads the graph."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from kgrec.cli import main
from kgrec.recommenders.registry import default_models, hybrid_components, registry


def test_models_lists_every_registered_recommender_with_its_roles() -> None:
    out = CliRunner().invoke(main, ["models", "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {r["name"] for r in rows} == set(registry())
    assert [r["name"] for r in rows if r["default"]] == list(default_models())
    assert {r["name"] for r in rows if r["hybrid_component"]} == set(hybrid_components())
    itemcf = next(r for r in rows if r["name"] == "itemcf")
    assert itemcf["choices"]["weighting"] == ["cosine", "bm25"] and "scores all items" in itemcf["abilities"]


def test_a_bad_option_value_is_a_usage_error_before_the_graph_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "never-loaded"  # reading it would fail with another message
    out = CliRunner().invoke(main, ["train", "--store", f"memory://{missing}", "--models", "itemcf",
                                    "--set", "itemcf.weighting=bm2", "--out", str(tmp_path / "b")])
    assert out.exit_code == 2
    assert "weighting" in out.output and "'cosine', 'bm25'" in out.output
    assert "no memory store" not in out.output and not (tmp_path / "b").exists()
    out = CliRunner().invoke(main, ["train", "--store", f"memory://{missing}", "--models", "ease",
                                    "--set", "ease.lam=-1", "--out", str(tmp_path / "b")])
    assert out.exit_code == 2 and "lam" in out.output and "> 0" in out.output
