"""The hybrid's pair features: exact values on a hand-made graph with times and ratings."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.records import GraphRecords, Interaction, Item, User
from kgrec.graph.snapshot import build_snapshot
from kgrec.recommenders.hybrid.features import DAY, ITEM_DAMPING, USER_DAMPING, FeatureSpace

T0 = 1_500_000_000


def graph(times: bool = True, ratings: bool = True):
    """u1 active on days 0-10; item a chosen by u2 on day 5, item b by u3 on day 400."""
    rows = [("u1", "x", 0, 4.0), ("u1", "y", 10, 2.0), ("u2", "a", 5, 5.0), ("u2", "x", 6, 3.0),
            ("u3", "b", 400, 1.0), ("u3", "y", 401, 3.0)]
    recs = GraphRecords()
    recs.users = [User(u) for u in ("u1", "u2", "u3")]
    recs.items = [Item(i, i) for i in ("a", "b", "x", "y")]
    recs.interactions = [Interaction(u, i, 1.0, r if ratings else None, T0 + int(d * DAY) if times else None)
                         for u, i, d, r in rows]
    return build_snapshot(recs)


def test_time_and_rating_features_of_a_pair() -> None:
    snap = graph()
    assert FeatureSpace.available(snap) == (True, True, True)
    fs = FeatureSpace(snap, ["c1"], True, True)
    a, b = snap.items.index["a"], snap.items.index["b"]
    scores = [np.where(np.isin(np.arange(len(snap.items)), [a, b]), 1.0, -np.inf)]
    cand, x, tops = fs.rows(snap.users.index["u1"], scores, 10)
    assert list(cand) == sorted([a, b]) and len(tops[0]) == 2
    col = {n: x[:, k] for k, n in enumerate(fs.names)}
    row = {int(i): k for k, i in enumerate(cand)}
    # a came 5 days before u1's last interaction; b 390 days after it
    assert col["first_after_last"][row[a]] == pytest.approx(-np.log1p(5.0))
    assert col["first_after_last"][row[b]] == pytest.approx(np.log1p(390.0))
    # a's one interaction lies within 30 days of u1's active period, b's does not
    assert col["log_window"][row[a]] == pytest.approx(np.log1p(1)) and col["window_share"][row[a]] == 1.0
    assert col["log_window"][row[b]] == 0.0
    mu = np.mean([4.0, 2.0, 5.0, 3.0, 1.0, 3.0])
    item_a = (5.0 + ITEM_DAMPING * mu) / (1 + ITEM_DAMPING)
    assert col["item_rating"][row[a]] == pytest.approx(item_a)
    assert col["log_user_items"][row[a]] == pytest.approx(np.log1p(2))


def test_graphs_without_times_or_ratings_have_no_such_columns() -> None:
    snap = graph(times=False, ratings=False)
    assert FeatureSpace.available(snap) == (False, False, False)
    names = FeatureSpace(snap, ["c1"], False, False).names
    assert "first_after_last" not in names and "item_rating" not in names
    assert names[:2] == ["c1:rr", "c1:z"]


def test_the_predicted_rating_column_is_the_raters_prediction_minus_the_users_mean() -> None:
    from kgrec.recommenders.registry import create

    snap = graph()
    rater = create("svdpp", n_iter=10, checkpoint=10, max_iter=10, serve_dim=2)
    rater.fit(snap)
    fs = FeatureSpace(snap, ["c1"], True, True, True, rater=rater)
    assert fs.names[-3:] == ["item_rating", "rating_vs_user", "predicted_rating"]
    a, b = snap.items.index["a"], snap.items.index["b"]
    scores = [np.where(np.isin(np.arange(len(snap.items)), [a, b]), 1.0, -np.inf)]
    cand, x, _ = fs.rows(snap.users.index["u1"], scores, 10)
    mu = np.mean([4.0, 2.0, 5.0, 3.0, 1.0, 3.0])
    user_mean = (4.0 + 2.0 + USER_DAMPING * mu) / (2 + USER_DAMPING)
    expected = rater.predict_ratings(["u1", "u1"], [snap.items.ids[j] for j in cand]) - user_mean
    np.testing.assert_allclose(x[:, -1], expected)
    blind = FeatureSpace(snap, ["c1"], True, True, True)  # no rater: the column is there, all zeros
    assert (blind.rows(snap.users.index["u1"], scores, 10)[1][:, -1] == 0).all()


def test_the_rating_group_serves_only_when_a_ranker_using_it_wins() -> None:
    """``select`` scores every ranker with and without the optional group; ``without`` says what
    the serving ranker does without, and a tie goes to the ranker without."""
    from kgrec.recommenders.hybrid.rating_feature import kept_flags
    from kgrec.recommenders.hybrid.selection import select

    rng = np.random.default_rng(0)
    rows, labels, cands, relevant = [], [], [], []
    for _ in range(200):
        cand = np.arange(20)
        signal = rng.normal(size=20)
        label = signal > 1.0
        noise = rng.normal(size=20)
        rows.append(np.column_stack([noise, signal]))  # column 1: the "rating" group, which carries the labels
        labels.append(label)
        cands.append(cand)
        relevant.append(cand[label])
    lists = {"c": [np.argsort(-r[:, 0])[:10] for r in rows]}
    helpful, _ = select(rows, labels, cands, relevant, lists, ["logistic"], 0, 0.01, 1.0, 2.0, {"ratings": [1]})
    assert helpful.serve == "ranker" and helpful.without == []
    assert set(helpful.rankers) == {"logistic", "logistic without ratings"}
    assert kept_flags((True, True, True), helpful) == (True, True, True)
    flat = [np.column_stack([r[:, 1], np.full(20, 3.0)]) for r in rows]  # the group says nothing: a tie
    useless, ranker = select(flat, labels, cands, relevant, lists, ["logistic"], 0, 0.01, 1.0, 2.0,
                             {"ratings": [1]})
    assert useless.rankers["logistic"] == useless.rankers["logistic without ratings"]
    assert useless.serve == "ranker" and useless.without == ["ratings"]
    assert ranker is not None and ranker.score(flat[0][:, :1]).shape == (20,)
    assert kept_flags((True, True, True), useless) == (True, False, False)
