"""Warm-started retraining (``FitContext.warm``, ``kgrec train --warm-start``): a warm start keeps
the old model's quality in a fraction of the epochs, new rows start sensibly, the guards send a
model to a cold fit and say why, and the PyKEEN initialiser fix holds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from kgrec.embeddings.pykeen_setup import TrainConfig, build_model
from kgrec.embeddings.triples import build_triples, item_label
from kgrec.embeddings.warm_train import initializers, stock_initializers, warm_train
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.loaders.synthetic import SyntheticGraph
from kgrec.recommenders.base import FitContext, Recommender, WarmStart
from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
from kgrec.recommenders.models.warm_fit import new_pair_cut, new_pairs
from kgrec.recommenders.registry import create
from tests.warm_graphs import older

SMALL: dict[str, dict] = {
    "als": {"factors": 8, "iterations": 15},
    "multvae": {"hidden_dim": 48, "latent_dim": 16, "epochs": 40, "batch_size": 32, "device": "cpu", "threads": 1},
    "kge": {"dim": 16, "epochs": 16, "batch_size": 256, "num_negatives": 256, "progress": False,
            "test_fraction": 0.0, "device": "cpu"},
}
COLD_EPOCHS = {"als": 15, "multvae": 40, "kge": 16}


@pytest.fixture(scope="module")
def old_graph(synthetic: SyntheticGraph) -> tuple[GraphSnapshot, frozenset[str], frozenset[str]]:
    records, users, items = older(synthetic.records, share=0.1, new_users=3, new_items=4)
    return build_snapshot(records), users, items


@pytest.fixture(scope="module")
def old_models(old_graph) -> dict[str, Recommender]:
    return {name: create(name, seed=3, **cfg).fit(old_graph[0]) for name, cfg in SMALL.items()}


def warm_from(old: GraphSnapshot, models: dict[str, Recommender], **options) -> WarmStart:
    return WarmStart(source="old-bundle", digest="d", fingerprint=old.fingerprint, snapshot=old, models=models,
                     **options)


def future_ndcg(model: Recommender, snapshot: GraphSnapshot, synthetic: SyntheticGraph) -> float:
    """NDCG@10 of the planted future items (in no graph here) for every user who has some."""
    users = [u for u in snapshot.users.ids if synthetic.truth.future.get(u)]
    lists = [np.array([snapshot.items.index[r.item_id] for r in model.recommend(u, 10)], dtype=np.int64) for u in users]
    relevant = [np.array(sorted(snapshot.items.index[i] for i in synthetic.truth.future[u] if i in snapshot.items))
                for u in users]
    return float(np.mean(ndcg_of_lists(lists, relevant, 10)))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_warm_start_from_the_same_graph_keeps_its_quality_in_fewer_epochs(name: str, snapshot: GraphSnapshot,
                                                                           synthetic: SyntheticGraph) -> None:
    old = create(name, seed=3, **SMALL[name]).fit(snapshot)
    warm = create(name, seed=3, **SMALL[name]).fit(snapshot, FitContext(warm=warm_from(snapshot, {name: old})))
    record = warm.warm_record
    assert record is not None and record["decision"] == "warm", record
    assert record["new"] == {"users": 0.0, "items": 0.0} and record["chain"] == 1
    assert record["epochs_trained"] < COLD_EPOCHS[name] / 4
    before, after = future_ndcg(old, snapshot, synthetic), future_ndcg(warm, snapshot, synthetic)
    assert after >= 0.95 * before, (before, after)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_warm_start_after_new_data_validates_on_new_pairs_and_learns_them(
        name: str, snapshot: GraphSnapshot, synthetic: SyntheticGraph, old_graph, old_models) -> None:
    old, new_users, _ = old_graph
    model = create(name, seed=3, **SMALL[name]).fit(snapshot, FitContext(warm=warm_from(old, old_models)))
    record = model.warm_record
    assert record["decision"] == "warm", record
    assert record["validation"] == "held-out pairs new since the old bundle" and record["validation_users"] >= 10
    epochs = [e for e, _ in record["curve"]]
    assert epochs == list(range(len(epochs))) and 1 <= len(epochs) <= record["max_epochs"] + 1
    assert record["best_epoch"] == max(record["curve"], key=lambda c: c[1])[0]
    assert record["epochs_trained"] <= record["max_epochs"] + 1 < COLD_EPOCHS[name]
    # a warm start is never worse than keeping the old model (it starts there and keeps the best)
    assert future_ndcg(model, snapshot, synthetic) >= 0.9 * future_ndcg(old_models[name], old, synthetic)
    for user in sorted(new_users):
        assert model.recommend(user, 5), f"{name} has nothing for the new user {user}"


def test_new_kge_rows_are_rank_neutral_and_of_the_usual_length(snapshot: GraphSnapshot, old_graph,
                                                                old_models) -> None:
    old, _, new_items = old_graph
    model = create("kge", seed=3, **SMALL["kge"])
    model._start(snapshot)
    from kgrec.recommenders.models.warm_adapters import KGEWarm

    adapter = KGEWarm(model, warm_from(old, old_models))
    artifact, init = adapter.train(snapshot, adapter.source(old_models["kge"]), 0, None)
    assert init["entities"]["derived"] >= len(new_items) and init["entities"]["default"] == 0
    vectors = artifact.entity_vectors
    norms = np.linalg.norm(vectors, axis=1)
    rows = {label: k for k, label in enumerate(artifact.entities)}
    new_rows = [rows[item_label(i)] for i in sorted(new_items)]
    known_rows = [rows[item_label(i)] for i in snapshot.items.ids if i not in new_items]
    low, high = np.percentile(norms[known_rows], [5, 95])
    assert all(low <= norms[r] <= high for r in new_rows), (norms[new_rows], low, high)
    model.attach(artifact, snapshot)
    new = [snapshot.items.index[i] for i in new_items]
    firsts, places = 0, []
    for user in snapshot.users.ids:
        scores = model.score_user(user)
        rank = np.empty(len(scores))
        rank[np.argsort(-scores)] = np.arange(len(scores)) / len(scores)
        places.append(rank[new].mean())
        firsts += int(np.argmax(scores) in new)
    assert firsts <= 0.1 * len(snapshot.users)  # not the centre every user is close to
    assert 0.3 <= float(np.mean(places)) <= 0.7  # on average in the middle of everyone's ranking


def test_new_multvae_items_start_between_known_ones(snapshot: GraphSnapshot, old_graph, old_models) -> None:
    old, _, new_items = old_graph
    model = create("multvae", seed=3, **SMALL["multvae"])
    model._start(snapshot)
    from kgrec.recommenders.models.warm_adapters import MultVAEWarm

    adapter = MultVAEWarm(model, warm_from(old, old_models))
    (ids, w), init = adapter.train(snapshot, adapter.source(old_models["multvae"]), 0, None)
    assert init["items"]["derived"] >= 1
    new = [k for k, i in enumerate(ids) if i in new_items]
    known = [k for k, i in enumerate(ids) if i not in new_items]
    assert new and w["out_b"][known].min() <= w["out_b"][new].min() and w["out_b"][new].max() <= w["out_b"][known].max()
    assert np.isfinite(w["out_w"]).all() and np.isfinite(w["lv_w"]).all()


def test_the_guards_send_a_model_to_a_cold_fit_and_say_why(snapshot: GraphSnapshot, old_graph, old_models) -> None:
    old = old_graph[0]
    cases = {
        "its shape changed: latent_dim 16 -> 8": ("multvae", {"latent_dim": 8}, {}),
        "too much is new": ("als", {}, {"max_new": 0.001}),
        "warm starts in a row": ("als", {}, {"history": {"als": {"chain": 5}}}),
        "the old bundle has no kge model": ("kge", {}, {"models": {}}),
    }
    for expected, (name, changes, options) in cases.items():
        warm = warm_from(old, options.pop("models", old_models), **options)
        model = create(name, seed=3, **{**SMALL[name], **changes}).fit(snapshot, FitContext(warm=warm))
        assert model.warm_record["decision"] == "cold" and expected in model.warm_record["reason"], expected
        assert model.warm_record["chain"] == 0
        assert model.recommend(snapshot.users.ids[0], 5)  # fitted cold instead


def test_check_cold_compares_paired_and_falls_back(snapshot: GraphSnapshot, old_graph, old_models) -> None:
    old = old_graph[0]
    kept = create("als", seed=3, **SMALL["als"]).fit(snapshot, FitContext(warm=warm_from(old, old_models,
                                                                                       check_cold=True)))
    assert kept.warm_record["cold_validation_ndcg"] > 0
    strict = create("als", seed=3, **SMALL["als"]).fit(
        snapshot, FitContext(warm=warm_from(old, old_models, check_cold=True, tolerance=-10.0)))
    assert strict.warm_record["decision"] == "cold" and "fell short on validation" in strict.warm_record["reason"]


def test_the_validation_holds_out_only_pairs_the_old_graph_lacks(snapshot: GraphSnapshot, old_graph) -> None:
    old = old_graph[0]
    fresh = new_pairs(old, snapshot)
    assert 0 < fresh.sum() < 0.2 * snapshot.interactions.nnz
    cut = new_pair_cut(old, snapshot, seed=3)
    m = snapshot.interactions
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    fresh_pairs = set(zip(rows[fresh].tolist(), m.indices[fresh].tolist(), strict=True))
    held = {(u, int(i)) for u, items in cut.test.items() for i in items}
    assert held and held <= fresh_pairs
    assert all(len(cut.train.user_items(u)) >= 1 for u in cut.test)
    assert not new_pairs(snapshot, snapshot).any()


def test_across_graphs_tags_match_by_normalised_name(synthetic: SyntheticGraph, snapshot: GraphSnapshot) -> None:
    from kgrec.graph.records import Tag

    recs = synthetic.records  # another graph: other user, item and tag ids, the same tag names in other case
    other = replace(recs, users=[replace(u, id="o" + u.id) for u in recs.users],
                    items=[replace(i, id="o" + i.id) for i in recs.items],
                    tags=[Tag("o" + t.id, t.name.upper(), t.kind) for t in recs.tags],
                    interactions=[replace(r, user="o" + r.user, item="o" + r.item) for r in recs.interactions],
                    taggings=[replace(t, user="o" + t.user, item="o" + t.item, tag="o" + t.tag) for t in recs.taggings],
                    item_tags=[replace(t, item="o" + t.item, tag="o" + t.tag) for t in recs.item_tags],
                    follows=[replace(f, user="o" + f.user, friend="o" + f.friend) for f in recs.follows])
    source = build_snapshot(other)
    pre = create("kge", seed=3, **SMALL["kge"]).fit(source)
    for names, copied in ((False, 0), (True, len(snapshot.tags))):
        warm = warm_from(source, {"kge": pre}, across=True, tag_names=names, epoch_share=0.125)
        model = create("kge", seed=3, **SMALL["kge"]).fit(snapshot, FitContext(warm=warm))
        assert model.warm_record["decision"] == "warm", model.warm_record
        assert model.warm_record["init"]["entities"]["copied"] == copied
        assert model.warm_record["init"]["relations"]["copied"] == len(model.artifact.relations)


# -- PyKEEN keeps pretrained vectors only through a copying initialiser ----------------------------
def _tiny_factory():
    from pykeen.triples import TriplesFactory

    labels = [f"e{i}" for i in range(40)]
    triples = np.array([[labels[i], "r" if i % 2 else "s", labels[(i * 7 + 1) % 40]] for i in range(40)])
    return TriplesFactory.from_labeled_triples(triples)


def _entities(model) -> np.ndarray:
    with torch.no_grad():
        return model.entity_representations[0](indices=None).detach().numpy().copy()


def test_pykeens_own_pretrained_initializer_loses_complex_vectors_on_reset() -> None:
    """The bug the copying initialiser works around (PyKEEN 1.11, RotatE): if this starts failing,
    PyKEEN fixed it and ``embeddings.warm_train`` could use the stock initialiser again."""
    tf = _tiny_factory()
    cfg = TrainConfig(model="RotatE", dim=8)
    fresh = build_model(cfg, tf, "cpu")
    start = _entities(fresh)[::-1].copy()
    relations = fresh.relation_representations[0](indices=None).detach().numpy().copy()
    stock = build_model(cfg, tf, "cpu", stock_initializers(start, relations))
    stock.reset_parameters_()  # what TrainingLoop.train does first
    assert np.abs(_entities(stock) - start).max() > 0.1


@pytest.mark.parametrize("kind", ["RotatE", "ComplEx", "DistMult"])
def test_the_copying_initializer_keeps_the_vectors_through_resets(kind: str) -> None:
    tf = _tiny_factory()
    cfg = TrainConfig(model=kind, dim=8)
    fresh = build_model(cfg, tf, "cpu")
    start = _entities(fresh)[::-1].copy()
    relations = fresh.relation_representations[0](indices=None).detach().numpy().copy()
    model = build_model(cfg, tf, "cpu", initializers(start, relations))
    model.reset_parameters_()
    model.reset_parameters_()
    np.testing.assert_allclose(_entities(model), start, atol=1e-6)


def test_warm_training_starts_where_the_old_model_ended(snapshot: GraphSnapshot) -> None:
    """Epoch 0 is the old vectors exactly, and one epoch at a tiny step stays next to them (the stock
    initialiser would start training from noise: max change about 5)."""
    cfg = TrainConfig(dim=16, epochs=2, batch_size=256, num_negatives=256, progress=False, test_fraction=0.0,
                      device="cpu")
    old = create("kge", seed=3, **SMALL["kge"]).fit(snapshot).artifact
    seen: dict[int, np.ndarray] = {}

    def after_epoch(epoch: int, artifact) -> bool:
        seen[epoch] = artifact.entity_vectors.copy()
        return False

    tiny = replace(cfg, learning_rate=1e-6)
    warm_train(snapshot, tiny, old, 1, after_epoch)
    triples = build_triples(snapshot, tiny.triple_options)
    assert tuple(triples.entities) == old.entities
    np.testing.assert_array_equal(seen[0], old.entity_vectors)
    assert np.abs(seen[1] - old.entity_vectors).max() < 0.01
