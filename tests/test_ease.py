"""EASE: the same scores as the paper's reference code, exact explanations, fold-in with
dislikes, the memory cap, and use in the fallback chain and as a hybrid component."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.hybrid.hybrid_model import Hybrid
from kgrec.recommenders.models.ease import EASE, item_cap, kept_items
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.query import Query
from kgrec.recommenders.serving.server import Server


def reference_ease(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck (2019), Algorithm 1, as printed: the textbook closed form with a dense inverse."""
    g = x.T @ x
    g[np.diag_indices(g.shape[0])] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    b[np.diag_indices(g.shape[0])] = 0.0
    return b


@pytest.fixture(scope="module")
def ease(snapshot: GraphSnapshot) -> EASE:
    return EASE(lam=30.0, min_users=1).fit(snapshot)


def test_scores_equal_the_reference_closed_form(ease: EASE, snapshot: GraphSnapshot) -> None:
    x = snapshot.interactions.toarray().astype(np.float64)
    x[x > 0] = 1.0
    modelled = np.flatnonzero(x.sum(axis=0) > 0)
    assert ease.gram_items == len(modelled)
    expected = np.zeros_like(x)
    expected[:, modelled] = x[:, modelled] @ reference_ease(x[:, modelled], 30.0)
    for u in range(0, len(snapshot.users), 7):
        np.testing.assert_allclose(ease.score_user(snapshot.users.ids[u]), expected[u], rtol=1e-5, atol=1e-6)


def test_contributions_sum_to_the_score_and_name_own_items(ease: EASE, snapshot: GraphSnapshot) -> None:
    user = snapshot.users.ids[5]
    own = {snapshot.items.ids[j] for j in snapshot.user_items(5)}
    recs = ease.recommend(user, k=5)
    assert recs
    for rec in recs:
        reasons = ease.explain(user, rec.item_id)
        assert {r.nodes[1].id for r in reasons} <= own
        assert all(r.nodes[0].id == user and r.kind == "cause" for r in reasons)
        assert sum(r.contribution for r in reasons) == pytest.approx(rec.score, abs=1e-9)
        assert "MATCH p = (u:User {id: $n0})-[:INTERACTED]->(j:Item {id: $n1})" in reasons[0].cypher


def test_fold_in_matches_recommend_and_a_dislike_subtracts(ease: EASE, snapshot: GraphSnapshot) -> None:
    u = 9
    user = snapshot.users.ids[u]
    items = snapshot.user_items(u)
    history = {snapshot.items.ids[j]: 1.0 for j in items}
    np.testing.assert_allclose(ease.score_history(history), ease.score_user(user), rtol=1e-9)
    liked = ease._history_scores(items, np.ones(len(items)))
    disliked_item = next(j for j in range(len(snapshot.items)) if j not in set(items.tolist()))
    with_dislike = ease._history_scores(np.append(items, disliked_item), np.append(np.ones(len(items)), -3.0))
    row = ease._b[ease._position[disliked_item]].astype(np.float64)
    np.testing.assert_allclose(with_dislike[ease._keep], liked[ease._keep] - row, atol=1e-9)


def test_the_memory_cap_keeps_the_largest_audiences(snapshot: GraphSnapshot) -> None:
    audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr)
    cap = item_cap(0.1)
    assert 0 < cap < len(snapshot.items)
    model = EASE(memory_mb=0.1, min_users=1).fit(snapshot)
    keep = kept_items(audience, 1, cap)
    assert model.gram_items == cap and np.array_equal(model._keep, keep)
    assert audience[keep].min() >= np.delete(audience, keep).max()
    kept_ids = {snapshot.items.ids[j] for j in keep}
    for user in snapshot.users.ids[:20]:
        assert {r.item_id for r in model.recommend(user, k=10)} <= kept_ids


def test_a_user_with_no_modelled_item_is_cold(snapshot: GraphSnapshot) -> None:
    audience = np.diff(sp.csc_matrix(snapshot.interactions).indptr)
    model = EASE(min_users=int(audience.max()) + 1).fit(snapshot)
    assert model.gram_items == 0
    assert model.recommend(snapshot.users.ids[0], k=5) == []
    assert model.score_history({snapshot.items.ids[0]: 1.0}) is None


def test_bad_options_are_refused(snapshot: GraphSnapshot) -> None:
    with pytest.raises(ValueError, match="lam"):
        EASE(lam=0.0).fit(snapshot)
    with pytest.raises(ValueError, match="memory_mb"):
        EASE(memory_mb=-1.0).fit(snapshot)


def test_search_space_suggests_lambda(snapshot: GraphSnapshot) -> None:
    assert EASE.search_space(optuna.trial.FixedTrial({"lam": 123.0, "local": False}), snapshot) == {"lam": 123.0}
    local = {"lam": 50.0, "local": True, "local_weight": 2.0, "local_window": 4.0}
    assert EASE.search_space(optuna.trial.FixedTrial(local), snapshot) == {
        "lam": 50.0, "local_weight": 2.0, "local_window": 4.0}  # the synthetic graph has timestamps


def test_the_hybrid_takes_ease_as_a_component(snapshot: GraphSnapshot) -> None:
    hybrid = Hybrid(components=("ease", "popularity"), candidates=20).fit(snapshot)
    assert set(hybrid.selection.components) == {"ease", "popularity"}  # both compared on validation
    assert set(hybrid.components) <= {"ease", "popularity"}  # what serves
    user = snapshot.users.ids[3]
    recs = hybrid.recommend(user, k=5)
    assert recs and hybrid.explain(user, recs[0].item_id)


def test_in_the_fallback_chain_popularity_fills_what_ease_cannot(snapshot: GraphSnapshot) -> None:
    ease = EASE(memory_mb=0.001).fit(snapshot)  # 9 items: short lists, cold users
    server = Server(snapshot, {"ease": ease, "popularity": create("popularity").fit(snapshot)}, ["ease", "popularity"])
    filled = 0
    for user in snapshot.users.ids[:40]:
        recs = server.recommend(Query(user, 10, explain=True))
        assert len(recs) == 10
        own = [(r.item, r.score) for r in recs if r.source == "ease"]
        assert own == [(r.item_id, r.score) for r in ease.recommend(user, k=10)][: len(own)]
        filled += any(r.source == "popularity" for r in recs)
        assert all(r.reasons for r in recs)
    assert filled > 0
