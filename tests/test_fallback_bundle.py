"""The fallback chain fills every gap, and bundles load in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.sparse as sp

from graph.snapshot import GraphSnapshot
from recommenders.bundle import Bundle, fit_models, save_bundle
from recommenders.fallback import FallbackChain
from recommenders.registry import create

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chain(snapshot: GraphSnapshot) -> FallbackChain:
    return FallbackChain([create("graph_walk").fit(snapshot), create("popularity").fit(snapshot)])


def test_unknown_user_gets_the_fallback(chain: FallbackChain) -> None:
    recs = chain.recommend("nobody-knows-me", k=7)
    assert len(recs) == 7
    assert {r.source for r in recs} == {"popularity"}
    assert chain.recommend("nobody-knows-me", k=7, exclude={recs[0].item_id})[0].item_id == recs[1].item_id
    reasons = chain.explain("nobody-knows-me", recs[0].item_id)
    assert len(reasons) == 1 and reasons[0].contribution == recs[0].score
    assert reasons[0].nodes[0].id == recs[0].item_id


def test_short_lists_are_filled_without_duplicates(chain: FallbackChain, snapshot: GraphSnapshot) -> None:
    user = snapshot.users.ids[0]
    seen = {snapshot.items.ids[j] for j in snapshot.user_items(0)}
    audience = snapshot.interactions.getnnz(axis=0)
    k = sum(1 for j, n in enumerate(audience) if n > 0 and snapshot.items.ids[j] not in seen)
    own = chain.recommenders[0].recommend(user, k=k)
    assert len(own) < k, "graph_walk should not reach every item; pick a larger k"
    recs = chain.recommend(user, k=k)
    ids = [r.item_id for r in recs]
    assert len(ids) == len(set(ids)) == k
    assert not set(ids) & seen
    assert [r.source for r in recs[: len(own)]] == ["graph_walk"] * len(own)
    assert {r.source for r in recs[len(own) :]} == {"popularity"}


def test_cold_user_is_served_by_the_next_recommender(snapshot: GraphSnapshot) -> None:
    m = snapshot.interactions.tolil(copy=True)
    m[0, :] = 0
    follows = snapshot.follows.tolil(copy=True)
    follows[0, :] = 0
    cold = snapshot.with_interactions(sp.csr_matrix(m))
    cold = GraphSnapshot(**{**cold.__dict__, "follows": sp.csr_matrix(follows)})
    user = cold.users.ids[0]
    chain = FallbackChain([create("itemcf").fit(cold), create("social").fit(cold), create("popularity").fit(cold)])
    assert chain.recommenders[0].recommend(user) == []
    recs = chain.recommend(user, k=5)
    assert len(recs) == 5 and {r.source for r in recs} == {"popularity"}
    assert chain.explain(user, recs[0].item_id, source="popularity")


def test_bundle_loads_in_a_fresh_process(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    models = fit_models(snapshot, ["graph_walk", "itemcf"], seed=5)
    out = save_bundle(tmp_path / "bundle", snapshot, models, seed=5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fallback"] == ["graph_walk", "itemcf", "popularity"]
    assert manifest["snapshot"]["fingerprint"] == snapshot.fingerprint
    assert all(m["config"]["seed"] == 5 for m in manifest["models"])
    assert not list(out.rglob("*.pkl"))
    user = snapshot.users.ids[4]
    script = (
        "import json, sys\n"
        "from recommenders.bundle import Bundle\n"
        "b = Bundle.load(sys.argv[1])\n"
        "print(json.dumps([[r.item_id, r.score, r.source] for r in b.chain.recommend(sys.argv[2], k=10)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out), user], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True)
    here = Bundle.load(out).chain.recommend(user, k=10)
    assert json.loads(done.stdout) == [[r.item_id, r.score, r.source] for r in here]
    assert [r.item_id for r in here] == [r.item_id for r in models["graph_walk"].recommend(user, k=10)][: len(here)]


def test_bundle_refuses_overwrite_and_tampering(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    models = fit_models(snapshot, ["popularity"])
    out = save_bundle(tmp_path / "b", snapshot, models)
    with pytest.raises(FileExistsError):
        save_bundle(out, snapshot, models)
    save_bundle(out, snapshot, models, overwrite=True)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["snapshot"]["fingerprint"] = "u1-i1-x1-0000"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="snapshot"):
        Bundle.load(out)
    with pytest.raises(FileNotFoundError):
        Bundle.load(tmp_path / "nothing-here")


def test_chain_for_a_model(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    bundle = Bundle.load(save_bundle(tmp_path / "b", snapshot, fit_models(snapshot, ["itemcf", "social"])))
    assert bundle.chain_for("social").names == ["social", "popularity"]
    with pytest.raises(ValueError, match="not in this bundle"):
        bundle.chain_for("als")
