"""The hybrid: learned re-ranking of the components' candidates (or its best component, when
the ranker does not pay on validation), MMR, save/load without pickle."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.loaders.synthetic import SyntheticGraph
from kgrec.recommenders.base import FitContext, Recommender
from kgrec.recommenders.evaluation import ranking_metrics as metrics
from kgrec.recommenders.hybrid.hybrid_model import Hybrid, HybridConfig
from kgrec.recommenders.models.popularity import Popularity
from kgrec.recommenders.registry import create

#: A ranker always serves (any positive validation NDCG beats the components "by -100 %").
FAST = HybridConfig(components=("graph_walk", "itemcf", "social", "popularity"), candidates=30, seed=3,
                    rankers=("logistic",), margin=-1.0, min_lead_z=-1e9)


@pytest.fixture(scope="module")
def hybrid(snapshot: GraphSnapshot) -> Hybrid:
    return Hybrid(FAST).fit(snapshot)


def test_the_ranker_serves_with_finite_named_parts(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    assert hybrid.selection is not None and hybrid.selection.serve == "ranker"
    assert hybrid.selection.ranker == "logistic" and set(hybrid.selection.components) == set(FAST.components)
    names = hybrid.feature_names()
    assert "graph_walk:rr" in names and "tag_cosine" in names and "log_user_items" in names
    cand, score, shares = hybrid._explained(5)  # the ranking with the components' shares
    assert shares is not None and shares.shape == (len(cand), len(FAST.components))
    assert np.isfinite(score).all() and np.isfinite(shares).all() and np.abs(shares).sum() > 0


def test_recommends_from_the_candidate_union(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    user = snapshot.users.ids[5]
    recs = hybrid.recommend(user, k=10)
    assert 0 < len(recs) <= 10
    seen = {snapshot.items.ids[j] for j in snapshot.user_items(5)}
    assert not seen & {r.item_id for r in recs}
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    union = set()
    for comp in hybrid.components.values():
        union |= {r.item_id for r in comp.recommend(user, k=FAST.candidates)}
    assert {r.item_id for r in recs} <= union
    excluded = hybrid.recommend(user, k=10, exclude=[recs[0].item_id])
    assert recs[0].item_id not in {r.item_id for r in excluded}
    assert hybrid.recommend("nobody", k=10) == []


def test_beats_popularity_on_planted_future(hybrid: Hybrid, snapshot: GraphSnapshot, synthetic: SyntheticGraph) -> None:
    pop = Popularity().fit(snapshot)

    def mean_ndcg(model) -> float:
        values = []
        for user, future in synthetic.truth.future.items():
            ranked = [snapshot.items.index[r.item_id] for r in model.recommend(user, k=10)]
            values.append(metrics.ndcg_at_k(ranked, {snapshot.items.index[i] for i in future}, 10))
        return float(np.mean(values))

    assert mean_ndcg(hybrid) > 1.5 * mean_ndcg(pop)


def test_explanations_come_from_the_components(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    from kgrec.recommenders.reason_paths import path_exists

    user = snapshot.users.ids[5]
    item = hybrid.recommend(user, k=1)[0].item_id
    reasons = hybrid.explain(user, item)
    assert reasons
    assert all(r.kind == "evidence" and r.text.startswith("[") for r in reasons)
    assert all(path_exists(snapshot, r) for r in reasons)


def test_save_load_round_trip_without_pickle(hybrid: Hybrid, snapshot: GraphSnapshot, tmp_path: Path) -> None:
    hybrid.save(tmp_path / "h")
    files = {p.suffix for p in (tmp_path / "h").rglob("*") if p.is_file()}
    assert files <= {".json", ".npz"}
    again = Hybrid.load(tmp_path / "h", snapshot)
    for u in snapshot.users.ids[:15]:
        assert again.recommend(u, k=10) == hybrid.recommend(u, k=10)
    meta = json.loads((tmp_path / "h" / "model.json").read_text())
    meta["features"] = meta["features"][:-1]
    (tmp_path / "h" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="feature list"):
        Hybrid.load(tmp_path / "h", snapshot)


def test_undeclared_or_misshapen_arrays_are_refused(hybrid: Hybrid, snapshot: GraphSnapshot, tmp_path: Path) -> None:
    """The ranker's arrays and the precomputed lists are declared (``recommenders.integrity``):
    an extra array, a missing one, or lists for another number of users is refused on load."""
    from kgrec.recommenders.bundle.integrity import BundleError

    hybrid.save(tmp_path / "h")
    archive = tmp_path / "h" / "arrays.npz"
    with np.load(archive, allow_pickle=False) as z:
        saved = {k: z[k] for k in z.files}
    assert {"ranker_weights", "ranker_mean", "ranker_std", "top_indptr"} <= set(saved)
    for change, needle in [({**saved, "ranker_extra": np.zeros(3)}, "ranker_extra"),
                           ({k: v for k, v in saved.items() if k != "ranker_std"}, "ranker_std"),
                           ({**saved, "top_complete": saved["top_complete"][:-1]}, "top_complete")]:
        np.savez(archive, **change)
        with pytest.raises(BundleError, match=needle):
            Hybrid.load(tmp_path / "h", snapshot)


def test_same_seed_same_model(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    again = Hybrid(FAST).fit(snapshot)
    assert again.selection == hybrid.selection
    assert again.recommend(snapshot.users.ids[9], k=10) == hybrid.recommend(snapshot.users.ids[9], k=10)


def test_mmr_trades_relevance_for_diversity(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    diverse = copy.copy(hybrid)  # the same fitted model, served with MMR on
    diverse.config = replace(FAST, mmr_lambda=0.3)
    plain_lists, mmr_lists = [], []
    for u in snapshot.users.ids[:40]:
        plain_lists.append([snapshot.items.index[r.item_id] for r in hybrid.recommend(u, k=10)])
        mmr_lists.append([snapshot.items.index[r.item_id] for r in diverse.recommend(u, k=10)])
    assert metrics.intra_list_diversity(mmr_lists, snapshot.item_tags) > metrics.intra_list_diversity(
        plain_lists, snapshot.item_tags
    )
    assert all(len(a) == len(b) for a, b in zip(plain_lists, mmr_lists, strict=True))


def test_refuses_to_contain_itself(snapshot: GraphSnapshot) -> None:
    with pytest.raises(ValueError, match="itself"):
        Hybrid(components=("hybrid",)).fit(snapshot)


def test_precomputed_lists_serve_what_live_scoring_does(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    assert hybrid.precomputed is not None and len(hybrid.precomputed.items) > 0
    diverse = copy.copy(hybrid)
    diverse.config = replace(FAST, mmr_lambda=0.3)
    for u, user in enumerate(snapshot.users.ids):
        for model in (hybrid, diverse):
            for k in (1, 10):
                assert model.recommend(user, k=k) == model.recommend_live(user, k=k)
        seen = [snapshot.items.ids[j] for j in snapshot.user_items(u)[:2]]
        assert hybrid.recommend(user, k=10, exclude=seen) == hybrid.recommend_live(user, k=10)
    user = snapshot.users.ids[5]
    top = hybrid.recommend(user, k=3)
    excluded = hybrid.recommend(user, k=10, exclude=[top[0].item_id])  # an unseen exclusion: scored live
    assert excluded == hybrid.recommend_live(user, k=10, exclude=[top[0].item_id])
    assert top[0].item_id not in {r.item_id for r in excluded}
    long = hybrid.recommend(user, k=500)  # past the kept head unless the whole list was kept
    assert long == hybrid.recommend_live(user, k=500)


def test_reuses_components_fitted_on_the_same_snapshot(hybrid: Hybrid, snapshot: GraphSnapshot) -> None:
    from kgrec.recommenders.bundle.model_bundle import fit_models
    from kgrec.recommenders.registry import create

    same = create("itemcf", seed=FAST.seed).fit(snapshot)
    other_config = create("graph_walk", seed=FAST.seed + 1).fit(snapshot)
    again = Hybrid(FAST).fit(snapshot, FitContext(fitted={"itemcf": same, "graph_walk": other_config}))
    assert again.components["itemcf"] is same
    assert again.components["graph_walk"] is not other_config
    assert again.selection == hybrid.selection
    for user in snapshot.users.ids[:20]:
        assert again.recommend(user, k=10) == hybrid.recommend(user, k=10)
    models = fit_models(snapshot, ["hybrid", "itemcf"], seed=FAST.seed,
                        configs={"hybrid": {"components": ("itemcf", "popularity"), "candidates": 30,
                                            "margin": -1.0, "min_lead_z": -1e9}})
    assert list(models) == ["hybrid", "itemcf", "popularity"]
    assert models["hybrid"].components["itemcf"] is models["itemcf"]
    assert models["hybrid"].components["popularity"] is models["popularity"]


def test_lambdarank_serves_and_round_trips_as_text(snapshot: GraphSnapshot, tmp_path: Path) -> None:
    model = Hybrid(replace(FAST, rankers=("lambdarank",))).fit(snapshot)
    assert model.selection.serve == "ranker" and model.selection.ranker == "lambdarank"
    user = snapshot.users.ids[5]
    recs = model.recommend(user, k=10)
    assert recs and [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    shares = model._explained(5)[2]
    assert shares is not None and np.isfinite(shares).all()
    model.save(tmp_path / "h")
    assert json.loads((tmp_path / "h" / "model.json").read_text())["ranker"]["model_json"].startswith("tree")
    again = Hybrid.load(tmp_path / "h", snapshot)
    for u in snapshot.users.ids[:15]:
        assert again.recommend_live(u, k=10) == model.recommend_live(u, k=10)


@pytest.fixture(scope="module")
def clear_winner(snapshot: GraphSnapshot) -> Hybrid:
    """itemcf is far better than popularity and content on the planted graph."""
    return Hybrid(HybridConfig(components=("itemcf", "popularity", "content"), candidates=30, seed=3)).fit(snapshot)


def test_serves_at_least_its_clearly_best_component(clear_winner: Hybrid, snapshot: GraphSnapshot,
                                                    synthetic: SyntheticGraph) -> None:
    sel = clear_winner.selection
    assert sel.components["itemcf"] > 1.5 * max(sel.components["popularity"], sel.components["content"])
    assert set(sel.rankers) == {"logistic", "lambdarank"}
    best_ranker = max(sel.rankers.values())
    if sel.serve == "component":
        assert sel.component == "itemcf" and best_ranker <= sel.components["itemcf"] * (1 + sel.margin)
        assert list(clear_winner.components) == ["itemcf"]  # only what serves is refitted and saved
    else:
        assert sel.rankers[sel.ranker] > sel.components["itemcf"] * (1 + sel.margin) and sel.lead_z > 2

    def future_ndcg(model: Recommender) -> float:
        values = []
        for user, future in synthetic.truth.future.items():
            ranked = [snapshot.items.index[r.item_id] for r in model.recommend(user, k=10)]
            values.append(metrics.ndcg_at_k(ranked, {snapshot.items.index[i] for i in future}, 10))
        return float(np.mean(values))

    itemcf = create("itemcf", seed=3).fit(snapshot)
    assert future_ndcg(clear_winner) >= future_ndcg(itemcf) - 0.005


def test_a_served_component_explains_with_its_own_reasons(snapshot: GraphSnapshot) -> None:
    alone = Hybrid(HybridConfig(components=("itemcf", "popularity"), candidates=30, seed=3, rankers=())).fit(snapshot)
    assert alone.selection.serve == "component" and alone.selection.component == "itemcf"
    assert "no ranker" in alone.selection.reason
    itemcf = create("itemcf", seed=3).fit(snapshot)
    user = snapshot.users.ids[5]
    recs = alone.recommend(user, k=5)
    assert [(r.item_id, r.score) for r in recs] == [(r.item_id, r.score) for r in itemcf.recommend(user, k=5)]
    own = itemcf.explain(user, recs[0].item_id)
    served = alone.explain(user, recs[0].item_id)
    assert sorted(r.contribution for r in served) == pytest.approx(sorted(r.contribution for r in own))
    assert all(r.kind == "evidence" and r.text.startswith("[itemcf] ") for r in served)
