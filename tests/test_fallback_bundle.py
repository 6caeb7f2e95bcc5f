"""The read path's chain fills every gap, and bundles load in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.bundle.integrity import write_seal
from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.query import Query
from kgrec.recommenders.serving.server import Server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(snapshot: GraphSnapshot) -> Server:
    models = {"graph_walk": create("graph_walk").fit(snapshot), "popularity": create("popularity").fit(snapshot)}
    return Server(snapshot, models, ["graph_walk", "popularity"])


def test_unknown_user_gets_the_fallback(server: Server) -> None:
    recs = server.recommend(Query("nobody-knows-me", 7, explain=True))
    assert len(recs) == 7
    assert {r.source for r in recs} == {"popularity"}
    again = server.recommend(Query("nobody-knows-me", 7, exclude=frozenset({recs[0].item})))
    assert again[0].item == recs[1].item
    assert len(recs[0].reasons) == 1 and recs[0].reasons[0].contribution == recs[0].score
    assert recs[0].reasons[0].nodes[0].id == recs[0].item
    used, reasons = server.explain("nobody-knows-me", recs[0].item)
    assert used == "popularity" and reasons == list(recs[0].reasons)


def test_short_lists_are_filled_without_duplicates(server: Server, snapshot: GraphSnapshot) -> None:
    user = snapshot.users.ids[0]
    seen = {snapshot.items.ids[j] for j in snapshot.user_items(0)}
    audience = snapshot.interactions.getnnz(axis=0)
    k = sum(1 for j, n in enumerate(audience) if n > 0 and snapshot.items.ids[j] not in seen)
    own = server.models["graph_walk"].recommend(user, k=k)
    assert len(own) < k, "graph_walk should not reach every item; pick a larger k"
    recs = server.recommend(Query(user, k))
    ids = [r.item for r in recs]
    assert len(ids) == len(set(ids)) == k
    assert not set(ids) & seen
    assert [r.source for r in recs[: len(own)]] == ["graph_walk"] * len(own)
    assert [r.item for r in recs[: len(own)]] == [r.item_id for r in own]
    assert {r.source for r in recs[len(own) :]} == {"popularity"}
    assert [r.rank for r in recs] == list(range(1, k + 1))
    only = server.recommend(Query(user, k, fallback=False))
    assert [r.item for r in only] == [r.item_id for r in own]


def test_cold_user_is_served_by_the_next_recommender(snapshot: GraphSnapshot) -> None:
    m = snapshot.interactions.tolil(copy=True)
    m[0, :] = 0
    follows = snapshot.follows.tolil(copy=True)
    follows[0, :] = 0
    cold = snapshot.with_interactions(sp.csr_matrix(m))
    cold = GraphSnapshot(**{**cold.__dict__, "follows": sp.csr_matrix(follows)})
    user = cold.users.ids[0]
    models = {n: create(n).fit(cold) for n in ("itemcf", "social", "popularity")}
    server = Server(cold, models, ["itemcf", "social", "popularity"])
    assert models["itemcf"].recommend(user) == []
    recs = server.recommend(Query(user, 5, explain=True))
    assert len(recs) == 5 and {r.source for r in recs} == {"popularity"}
    assert all(r.reasons for r in recs)


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
        "from kgrec.recommenders.bundle.model_bundle import Bundle\n"
        "from kgrec.recommenders.serving.query import Query\n"
        "from kgrec.recommenders.serving.server import Server\n"
        "s = Server.from_bundle(Bundle.load(sys.argv[1]))\n"
        "print(json.dumps([[r.item, r.score, r.source] for r in s.recommend(Query(sys.argv[2], 10))]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out), user], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True)
    here = Server.from_bundle(Bundle.load(out)).recommend(Query(user, 10))
    assert json.loads(done.stdout) == [[r.item, r.score, r.source] for r in here]
    assert [r.item for r in here] == [r.item_id for r in models["graph_walk"].recommend(user, k=10)][: len(here)]


def test_bundle_refuses_overwrite_and_tampering(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    models = fit_models(snapshot, ["popularity"])
    out = save_bundle(tmp_path / "b", snapshot, models)
    with pytest.raises(FileExistsError):
        save_bundle(out, snapshot, models)
    save_bundle(out, snapshot, models, overwrite=True)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["snapshot"]["fingerprint"] = "u1-i1-x1-0000"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest\.json was changed"):  # the seal covers the manifest
        Bundle.load(out)
    write_seal(out, None)  # resealed, it still names another snapshot than the one it holds
    with pytest.raises(ValueError, match="snapshot"):
        Bundle.load(out)
    with pytest.raises(FileNotFoundError):
        Bundle.load(tmp_path / "nothing-here")


def test_a_model_first_then_the_bundles_chain(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    server = Server.from_bundle(Bundle.load(save_bundle(tmp_path / "b", snapshot,
                                                        fit_models(snapshot, ["itemcf", "social"]))))
    assert server.order("social") == ["social", "itemcf", "popularity"]
    assert server.order() == ["itemcf", "social", "popularity"]
    with pytest.raises(ValueError, match="not in the bundle"):
        server.order("als")
