"""The contract every registered recommender keeps, run against each of them.

A recommender that is registered but missing from ``COVERED`` fails
``test_every_registered_recommender_is_under_contract``.
"""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.reason_paths import CYPHER, path_exists
from kgrec.recommenders.registry import create, registry

#: Every registered name, with the configurations the contract runs (small, for speed).
COVERED: dict[str, list[dict]] = {
    "popularity": [{}, {"mode": "decayed", "half_life_days": 10.0}, {"mode": "tag"}],
    "itemcf": [{}, {"weighting": "bm25", "interaction_weighting": "log"}],
    "usercf": [{}, {"weighting": "bm25"}],
    "content": [{}],
    "association": [{}, {"metric": "lift"}],
    "als": [{"iterations": 5}],
    "bpr": [{"iterations": 20}],
    "graph_walk": [{}, {"method": "rwr", "alpha": 1.0, "beta": 0.0}],
    "social": [{}],
    "hybrid": [{"components": ("graph_walk", "itemcf", "social", "popularity"), "candidates": 30}],
    "kge": [{"dim": 16, "epochs": 3, "batch_size": 512, "progress": False, "test_fraction": 0.0,
             "validation_fraction": 0.0}],
    "multvae": [{"hidden_dim": 48, "latent_dim": 16, "epochs": 10, "batch_size": 32, "device": "cpu", "threads": 1}],
    "ease": [{}, {"lam": 20.0, "min_users": 1, "interaction_weighting": "log"}, {"memory_mb": 0.1},
             {"local_weight": 2.0, "local_window": 3.0}],
}
CASES = [(name, cfg) for name, cfgs in COVERED.items() for cfg in cfgs]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in c.items()) or 'default'}" for n, c in CASES]
K = 10


def test_every_registered_recommender_is_under_contract() -> None:
    missing = set(registry()) - set(COVERED)
    assert not missing, f"registered but not under contract: {sorted(missing)}"
    assert not set(COVERED) - set(registry()), "COVERED names a recommender that is not registered"


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def fitted(request, snapshot: GraphSnapshot):
    name, cfg = request.param
    return name, cfg, create(name, seed=3, **cfg).fit(snapshot)


def _users(snapshot: GraphSnapshot, n: int = 12) -> list[str]:
    return list(snapshot.users.ids[:: max(1, len(snapshot.users) // n)])


def test_at_most_k_unseen_unexcluded_sorted(fitted, snapshot: GraphSnapshot) -> None:
    name, _, model = fitted
    served = 0
    for user in _users(snapshot):
        seen = {snapshot.items.ids[j] for j in snapshot.user_items(snapshot.users.index[user])}
        first = model.recommend(user, k=K)
        assert len(first) <= K
        served += len(first)
        exclude = {r.item_id for r in first[:3]}
        recs = model.recommend(user, k=K, exclude=exclude)
        ids = [r.item_id for r in recs]
        assert len(recs) <= K and len(set(ids)) == len(ids)
        assert not set(ids) & seen, "recommended an item the user already has"
        assert not set(ids) & exclude, "recommended an excluded item"
        assert all(r.source == name for r in recs)
        scores = [r.score for r in recs]
        assert scores == sorted(scores, reverse=True)
        assert all(np.isfinite(scores))
        assert len(model.recommend(user, k=3)) <= 3
    assert served > 0, "recommended nothing to anyone"


def test_deterministic_under_a_seed(fitted, snapshot: GraphSnapshot) -> None:
    name, cfg, model = fitted
    again = create(name, seed=3, **cfg).fit(snapshot)
    for user in _users(snapshot, 6):
        a = [(r.item_id, r.score) for r in model.recommend(user, k=K)]
        b = [(r.item_id, r.score) for r in again.recommend(user, k=K)]
        assert a == b


def test_unknown_user_gets_an_empty_list(fitted) -> None:
    _, _, model = fitted
    assert model.recommend("no-such-user", k=K) == []
    assert model.explain("no-such-user", "no-such-item") == []


def test_save_load_round_trips(fitted, snapshot: GraphSnapshot, tmp_path) -> None:
    name, _, model = fitted
    model.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    loaded = registry()[name].load(tmp_path / name, snapshot)
    assert loaded.config == model.config
    for user in _users(snapshot, 6):
        a = model.recommend(user, k=K)
        assert [(r.item_id, r.score) for r in a] == [(r.item_id, r.score) for r in loaded.recommend(user, k=K)]
        if a:
            assert model.explain(user, a[0].item_id) == loaded.explain(user, a[0].item_id)


def test_load_refuses_another_snapshot(fitted, snapshot: GraphSnapshot, tmp_path) -> None:
    name, _, model = fitted
    model.save(tmp_path / name)
    other = snapshot.with_interactions(_drop_first_row(snapshot))
    with pytest.raises(ValueError, match="snapshot"):
        registry()[name].load(tmp_path / name, other)


def _drop_first_row(snapshot: GraphSnapshot):
    m = snapshot.interactions.tolil(copy=True)
    m[0, :] = 0
    return m.tocsr()


def test_explanations_are_real_paths_that_add_up(fitted, snapshot: GraphSnapshot) -> None:
    _, _, model = fitted
    explained = 0
    for user in _users(snapshot, 8):
        for rec in model.recommend(user, k=3):
            reasons = model.explain(user, rec.item_id)
            assert reasons, f"no reasons for {user} -> {rec.item_id}"
            explained += 1
            for r in reasons:
                assert len(r.nodes) == len(r.rels) + 1
                assert path_exists(snapshot, r), f"path not in graph: {r.text}"
                assert r.cypher in CYPHER.values()
                assert r.params == {f"n{k}": n.id for k, n in enumerate(r.nodes)}
                assert "MATCH" in r.cypher and "$n0" in r.cypher
                assert r.text
            ends = {r.nodes[-1].id for r in reasons}
            if model.additive:
                assert all(r.kind == "cause" for r in reasons)
                assert abs(sum(r.contribution for r in reasons) - rec.score) <= 1e-6
            else:
                assert all(r.kind == "evidence" for r in reasons)
            assert rec.item_id in ends or any(r.nodes[0].id == user for r in reasons)
    assert explained > 0


@pytest.mark.parametrize("limit", [0, 2])
def test_top_reasons_keep_the_full_explanation(fitted, snapshot: GraphSnapshot, limit: int) -> None:
    """What the API serves (the strongest ``limit`` reasons plus the count and sum of the
    rest, built without building the rest) accounts for the whole of ``explain``."""
    _, _, model = fitted
    checked = 0
    for user in _users(snapshot, 6):
        recs = model.recommend(user, k=4)
        many = model.explain_many(user, [r.item_id for r in recs], limit)
        assert len(many) == len(recs)
        for rec, top in zip(recs, many, strict=True):
            full = model.explain(user, rec.item_id)
            assert model.explain_top(user, rec.item_id, limit) == top
            assert len(top.reasons) == min(limit, len(full))
            assert len(top.reasons) + top.omitted == len(full)
            shown = sum(r.contribution for r in top.reasons)
            assert abs(shown + top.omitted_contribution - sum(r.contribution for r in full)) <= 1e-6
            assert top.omitted_magnitude >= abs(top.omitted_contribution) - 1e-12
            if model.additive:
                assert abs(shown + top.omitted_contribution - rec.score) <= 1e-6
                assert [r.contribution for r in top.reasons] == pytest.approx(
                    [r.contribution for r in full[:limit]], abs=1e-12)
            for r in top.reasons:
                assert path_exists(snapshot, r), f"path not in graph: {r.text}"
            checked += 1
    assert checked > 0
    assert model.explain_many("nobody-at-all", ["x"], limit)[0].reasons == ()


def test_the_served_list_is_the_models_own(fitted, snapshot: GraphSnapshot) -> None:
    """Production ranks through the read path (``Server``), the contract above through
    ``recommend``: both must give the same items, scores and order (one top-k path)."""
    from kgrec.recommenders.serving.server import Query, Server

    name, _, model = fitted
    server = Server(snapshot, {name: model}, [name], name, 0)
    for user in _users(snapshot, 6):
        own = model.recommend(user, k=K)
        served = server.recommend(Query(user, K, fallback=False))
        assert [r.item for r in served] == [r.item_id for r in own]
        assert [r.score for r in served] == pytest.approx([r.score for r in own], rel=1e-12)


def test_the_class_declares_its_contract(fitted) -> None:
    """What tuning and training need is on the class, and a bad option fails at construction."""
    from kgrec.recommenders.base import FitCost, ScoresAllItems
    from kgrec.recommenders.config import ConfigError, ModelConfig

    name, _, model = fitted
    cls = type(model)
    assert isinstance(cls.fit_cost, FitCost)
    assert issubclass(cls.Config, ModelConfig) and isinstance(model.config, cls.Config)
    assert isinstance(model, ScoresAllItems) != cls.composes, "composed models rank candidates, not all items"
    with pytest.raises(ConfigError, match="seed"):
        create(name, seed="three")
    with pytest.raises(ConfigError, match="no_such_option"):
        create(name, no_such_option=1)
