"""The contract every registered recommender keeps, run against each of them.

A recommender that is registered but missing from ``COVERED`` fails
``test_every_registered_recommender_is_under_contract``.
"""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import PredictsRatings, Recommender
from kgrec.recommenders.config import ModelConfig
from kgrec.recommenders.evaluation.explicit_ratings import explicit_ratings
from kgrec.recommenders.models.rating_parts import ExplainsRatings
from kgrec.recommenders.reason_paths import CYPHER, path_exists
from kgrec.recommenders.registry import create, registry
from kgrec.recommenders.serving.query import Query
from kgrec.recommenders.serving.server import Server

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
    "multitask": [{"hidden_dim": 48, "latent_dim": 16, "epochs": 10, "batch_size": 32, "threads": 1},
                  {"tasks": ("interactions", "tags"), "hidden_dim": 32, "latent_dim": 8, "epochs": 5, "aux_weight": 0.3,
                   "threads": 1}],
    "ease": [{}, {"lam": 20.0, "min_users": 1, "interaction_weighting": "log"}, {"memory_mb": 0.1},
             {"local_weight": 2.0, "local_window": 3.0}],
    "geo": [{}, {"bandwidth": 0.5, "popularity_weight": 0.0, "wide_weight": 0.1, "friend_weight": 0.2}],
    "svdpp": [{"max_iter": 40, "checkpoint": 20, "serve_dim": 8}, {"n_iter": 20, "implicit": False, "tags": False}],
    "profile": [{}, {"shrinkage": 10.0, "history_half": 3.0, "kinds": ("occupation", "gender")}],
    "trustsvd": [{"max_iter": 40, "checkpoint": 20, "serve_dim": 8}, {"n_iter": 20, "trust": "on"}],
}
CASES = [(name, cfg) for name, cfgs in COVERED.items() for cfg in cfgs]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in c.items()) or 'default'}" for n, c in CASES]
K = 10


def test_every_registered_recommender_is_under_contract() -> None:
    missing = set(registry()) - set(COVERED)
    assert not missing, f"registered but not under contract: {sorted(missing)}"
    assert not set(COVERED) - set(registry()), "COVERED names a recommender that is not registered"


@pytest.fixture(scope="module")
def rated_snapshot(snapshot: GraphSnapshot) -> GraphSnapshot:
    """The same graph with a 1–5 star rating on every interaction (more stars for more plays),
    for models that learn from ratings, which the shared graph does not have."""
    stars = np.clip(np.round(1.0 + snapshot.interactions.data / 2.0), 1, 5)
    return snapshot.with_interactions(snapshot.interactions, ratings=stars, timestamps=snapshot.timestamps)


@pytest.fixture(scope="module")
def located_snapshot() -> GraphSnapshot:
    """A check-in graph whose places have coordinates (planted cities), for location models."""
    from tests.geo_graphs import planted_snapshot

    return planted_snapshot()


@pytest.fixture(scope="module")
def profiled_snapshot() -> GraphSnapshot:
    """A graph whose users have profiles that decide part of their taste, for profile models."""
    from tests.profile_graphs import planted_snapshot

    return planted_snapshot()


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def fitted(request, snapshot: GraphSnapshot, rated_snapshot: GraphSnapshot, located_snapshot: GraphSnapshot,
           profiled_snapshot: GraphSnapshot):
    """(name, config, fitted model, the snapshot it was fitted on): the shared graph, or the rated
    or located one for a model that does not apply to the shared graph (``Recommender.applies_to``)."""
    name, cfg = request.param
    graphs = [g for g in (snapshot, rated_snapshot, located_snapshot, profiled_snapshot)
              if registry()[name].applies_to(g)]
    assert graphs, f"{name} applies to no contract graph"
    return name, cfg, create(name, seed=3, **cfg).fit(graphs[0]), graphs[0]


def _users(snapshot: GraphSnapshot, n: int = 12) -> list[str]:
    return list(snapshot.users.ids[:: max(1, len(snapshot.users) // n)])


def test_at_most_k_unseen_unexcluded_sorted(fitted) -> None:
    name, _, model, snapshot = fitted
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
    if type(model).recommends:
        assert served > 0, "recommended nothing to anyone"
    else:
        assert served == 0, "a model that declares it serves no lists recommended something"
        assert isinstance(model, PredictsRatings), "a model that serves no lists must predict ratings"


def test_deterministic_under_a_seed(fitted) -> None:
    name, cfg, model, snapshot = fitted
    again = create(name, seed=3, **cfg).fit(snapshot)
    for user in _users(snapshot, 6):
        a = [(r.item_id, r.score) for r in model.recommend(user, k=K)]
        b = [(r.item_id, r.score) for r in again.recommend(user, k=K)]
        assert a == b
    if isinstance(model, PredictsRatings):
        users, items = _rated_pairs(snapshot)
        np.testing.assert_array_equal(model.predict_ratings(users, items), again.predict_ratings(users, items))


def test_unknown_user_gets_an_empty_list(fitted) -> None:
    model = fitted[2]
    assert model.recommend("no-such-user", k=K) == []
    assert model.explain("no-such-user", "no-such-item") == []


def test_save_load_round_trips(fitted, tmp_path) -> None:
    name, _, model, snapshot = fitted
    model.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    loaded = registry()[name].load(tmp_path / name, snapshot)
    assert loaded.config == model.config
    for user in _users(snapshot, 6):
        a = model.recommend(user, k=K)
        assert [(r.item_id, r.score) for r in a] == [(r.item_id, r.score) for r in loaded.recommend(user, k=K)]
        if a:
            assert model.explain(user, a[0].item_id) == loaded.explain(user, a[0].item_id)
    if isinstance(model, PredictsRatings):
        assert isinstance(loaded, PredictsRatings)
        users, items = _rated_pairs(snapshot)
        np.testing.assert_array_equal(model.predict_ratings(users, items), loaded.predict_ratings(users, items))


def test_load_refuses_another_snapshot(fitted, tmp_path) -> None:
    name, _, model, snapshot = fitted
    model.save(tmp_path / name)
    other = snapshot.with_interactions(_drop_first_row(snapshot))
    with pytest.raises(ValueError, match="snapshot"):
        registry()[name].load(tmp_path / name, other)


def _rated_pairs(snapshot: GraphSnapshot) -> tuple[list[str], list[str]]:
    """Every rated (user, item) pair of the graph, plus an unknown user and an unknown item."""
    rated = explicit_ratings(snapshot)
    assert rated is not None
    users = [snapshot.users.ids[u] for u in rated.user] + ["no-such-user", snapshot.users.ids[0]]
    items = [snapshot.items.ids[i] for i in rated.item] + [snapshot.items.ids[0], "no-such-item"]
    return users, items


def test_predicted_ratings_keep_the_scale_and_add_up(fitted) -> None:
    """A model that predicts ratings answers every pair on the graph's scale — an unknown user or
    item with its baseline, never NaN or an error — and its explanations add up to the rating."""
    name, _, model, snapshot = fitted
    if not isinstance(model, PredictsRatings):
        pytest.skip(f"{name} does not predict ratings")
    rated = explicit_ratings(snapshot)
    assert rated is not None
    users, items = _rated_pairs(snapshot)
    predicted = model.predict_ratings(users, items)
    assert predicted.shape == (len(users),) and np.isfinite(predicted).all()
    assert predicted.min() >= rated.low and predicted.max() <= rated.high
    assert np.corrcoef(predicted[:-2], rated.rating)[0, 1] > 0.3, "predictions do not follow the ratings"
    if isinstance(model, ExplainsRatings):
        for user in [*_users(snapshot, 4), "no-such-user"]:
            asked = [*snapshot.items.ids[:5], "no-such-item"]
            explained = model.explain_ratings(user, asked, limit=2)
            np.testing.assert_allclose([e.rating for e in explained], model.predict_ratings([user] * 6, asked))
            for e in explained:
                assert abs(e.total() - e.rating) < 1e-9
                assert len(e.co_rated) <= 2 and len(e.trusted) <= 2
            assert explained[-1].baseline is not None and "item" in explained[-1].baseline
            assert (explained[0].baseline is not None) == (user == "no-such-user")


class _Listing(Recommender):
    """A stand-in model that serves lists (for a server holding a rating-only model)."""

    name = "other"
    Config = ModelConfig

    def fit(self, snapshot: GraphSnapshot, ctx=None) -> _Listing:
        return self

    def recommend(self, user_id, k=10, exclude=None) -> list:
        return []

    def explain(self, user_id, item_id) -> list:
        return []

    def save(self, directory) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory, snapshot) -> _Listing:
        raise NotImplementedError


def _drop_first_row(snapshot: GraphSnapshot):
    m = snapshot.interactions.tolil(copy=True)
    m[0, :] = 0
    return m.tocsr()


def test_explanations_are_real_paths_that_add_up(fitted) -> None:
    _, _, model, snapshot = fitted
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
    assert explained > 0 or not type(model).recommends


@pytest.mark.parametrize("limit", [0, 2])
def test_top_reasons_keep_the_full_explanation(fitted, limit: int) -> None:
    """What the API serves (the strongest ``limit`` reasons plus the count and sum of the
    rest, built without building the rest) accounts for the whole of ``explain``."""
    _, _, model, snapshot = fitted
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
    assert checked > 0 or not type(model).recommends
    assert model.explain_many("nobody-at-all", ["x"], limit)[0].reasons == ()


def test_the_served_list_is_the_models_own(fitted) -> None:
    """Production ranks through the read path (``Server``), the contract above through
    ``recommend``: both must give the same items, scores and order (one top-k path)."""
    name, _, model, snapshot = fitted
    if not type(model).recommends:  # never in a list's chain, never the default
        with pytest.raises(ValueError, match="serves no lists"):
            Server(snapshot, {name: model, "other": _Listing()}, [name, "other"], name, 0)
        server = Server(snapshot, {name: model, "other": _Listing()}, [name, "other"])
        assert server.chain == ["other"] and name in server.raters
        with pytest.raises(ValueError, match="serves no lists"):
            server.recommend(Query(_users(snapshot, 1)[0], K, name))
        return
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

    name, _, model, _ = fitted
    cls = type(model)
    assert isinstance(cls.fit_cost, FitCost)
    assert issubclass(cls.Config, ModelConfig) and isinstance(model.config, cls.Config)
    assert (isinstance(model, ScoresAllItems) or not cls.recommends) != cls.composes, (
        "composed models rank candidates, not all items; every other model scores all items, or serves no lists")
    with pytest.raises(ConfigError, match="seed"):
        create(name, seed="three")
    with pytest.raises(ConfigError, match="no_such_option"):
        create(name, no_such_option=1)
