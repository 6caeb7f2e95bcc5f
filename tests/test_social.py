"""Trust-aware social: direction of trust, two-hop paths and popularity shares that add up,
shrinkage, the choice on a validation cut, and quality on directed trust networks where
trust does and does not follow taste."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, User
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.evaluation.offline_evaluation import score_fitted
from kgrec.recommenders.evaluation.ranking_metrics import block_ndcg, ndcg_at_k
from kgrec.recommenders.evaluation.splits import random_holdout
from kgrec.recommenders.models.social import SHRINKAGE_GRID, TWO_HOP_GRID, Social
from kgrec.recommenders.ranking import top_k
from kgrec.recommenders.reason_paths import FRIEND, FRIEND_OF_FRIEND, ITEM, path_exists
from kgrec.recommenders.registry import create
from tests.trust_graphs import trust_graph


def _shape(reason) -> tuple:
    return tuple(n.label for n in reason.nodes), reason.rels


def chain(follows: bool = True) -> GraphSnapshot:
    """a → b → c (one-way trust); c played x and y, b played y, a and c share z."""
    r = GraphRecords()
    r.users += [User(u) for u in "abc"]
    r.items += [Item(i, i.upper()) for i in "xyz"]
    r.interactions += [Interaction("c", "x", 1.0), Interaction("c", "y", 1.0), Interaction("b", "y", 1.0),
                       Interaction("a", "z", 1.0), Interaction("c", "z", 1.0)]
    if follows:
        r.follows += [Follow("a", "b", 1.0), Follow("b", "c", 1.0)]
    return build_snapshot(r)


def test_trust_follows_the_direction_of_follows() -> None:
    model = Social(two_hop=0.5, shrinkage=0.0).fit(chain())
    assert {r.item_id for r in model.recommend("a", k=5)} == {"x", "y"}  # via b, and via b → c
    assert model.recommend("c", k=5) == []  # c follows nobody: cold
    reasons = model.explain("a", "x")
    assert [(_shape(r), [n.id for n in r.nodes]) for r in reasons] == [
        (FRIEND_OF_FRIEND, ["a", "b", "c", "x"])]


def test_every_share_is_a_real_path_and_they_add_up(snapshot: GraphSnapshot) -> None:
    model = Social(two_hop=0.5, shrinkage=2.0).fit(snapshot)
    shapes = set()
    for user in snapshot.users.ids[:30]:
        for rec in model.recommend(user, k=3):
            reasons = model.explain(user, rec.item_id)
            assert sum(r.contribution for r in reasons) == pytest.approx(rec.score, abs=1e-12)
            assert all(path_exists(snapshot, r) and r.kind == "cause" for r in reasons)
            shapes |= {_shape(r) for r in reasons}
    assert shapes == {FRIEND, FRIEND_OF_FRIEND, ITEM}


def test_shrinkage_leans_on_popularity_for_thin_trust(snapshot: GraphSnapshot) -> None:
    pure = Social(two_hop=0.0, shrinkage=math.inf).fit(snapshot)
    popularity = create("popularity").fit(snapshot)
    for user in snapshot.users.ids[:10]:
        assert [r.item_id for r in pure.recommend(user, k=10)] == [r.item_id for r in popularity.recommend(user, k=10)]
    model = Social(two_hop=0.0, shrinkage=4.0).fit(snapshot)
    friends = np.diff(model._trust.direct.indptr)
    few, many = int(np.argmin(np.where(friends > 0, friends, 99))), int(np.argmax(friends))
    gamma = {u: model._mix(u)[2] for u in (few, many)}
    assert gamma[few] == pytest.approx(4.0 / (4.0 + friends[few]))
    assert gamma[few] > gamma[many] > 0


def test_two_hop_and_shrinkage_are_chosen_on_validation_and_saved(snapshot: GraphSnapshot, tmp_path) -> None:
    model = Social().fit(snapshot)
    assert len(model.validation) == len(TWO_HOP_GRID) * len(SHRINKAGE_GRID)
    best = max(model.validation, key=model.validation.get)
    assert best == f"two_hop={model.chosen['two_hop']},shrinkage={model.chosen['shrinkage']}"
    model.save(tmp_path / "m")
    assert Social.load(tmp_path / "m", snapshot).chosen == model.chosen
    half = Social(shrinkage=8.0).fit(snapshot)
    assert half.chosen["shrinkage"] == 8.0 and len(half.validation) == len(TWO_HOP_GRID)
    assert Social(two_hop=0.25, shrinkage=1.0).fit(snapshot).validation == {}


def test_a_graph_without_follows_leaves_everyone_cold() -> None:
    model = Social().fit(chain(follows=False))
    assert model.validation == {} and all(model.recommend(u, k=3) == [] for u in "abc")


@pytest.mark.parametrize("mode, factor", [("correlated", 2.0), ("uncorrelated", 1.0)])
def test_at_least_popularity_on_users_with_trust(mode: str, factor: float) -> None:
    """Where trust follows taste social must be well above popularity; where it does not,
    the choice on validation must still keep it from falling below popularity."""
    split = random_holdout(build_snapshot(trust_graph(mode).records), 0.2, 42, 5)
    users = [u for u in split.test if split.train.follows[u].nnz > 0]
    fitted = {name: (create(name).fit(split.train), 0.0) for name in ("popularity", "social")}
    ndcg = {r.name: r.metrics["ndcg@10"] for r in score_fitted(split, fitted, users=users).results}
    assert ndcg["social"] >= factor * ndcg["popularity"] > 0, ndcg


def test_bad_options_are_refused(snapshot: GraphSnapshot) -> None:
    for bad in ({"two_hop": 1.5}, {"shrinkage": -1.0}, {"trust_floor": 2.0}, {"max_two_hop": 0},
                {"validation_fraction": 0.0}):
        with pytest.raises(ValueError):
            Social(**bad).fit(snapshot)


def test_search_space_suggests_the_trust_knobs() -> None:
    chosen = {"trust_floor": 0.2, "two_hop": 0.4, "shrinkage": 3.0}
    assert Social.search_space(optuna.trial.FixedTrial(chosen), None) == chosen


@pytest.mark.parametrize("positive_only", [True, False])
def test_block_ndcg_equals_the_evaluation_metric(positive_only: bool) -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 30))
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    relevant = rng.random(scores.shape) < 0.15
    expected = [ndcg_at_k(top_k(s, 10, positive_only).tolist(), set(np.flatnonzero(r).tolist()), 10)
                for s, r in zip(scores, relevant, strict=True)]
    np.testing.assert_allclose(block_ndcg(scores, relevant, 10, positive_only), expected, atol=1e-12)
