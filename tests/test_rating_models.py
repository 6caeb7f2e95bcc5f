"""The rating models (``svdpp``, ``trustsvd``) on planted graphs, and the rule that says which
interactions are ratings (``recommenders.evaluation.explicit_ratings``).

Seeded and small: every graph comes from ``tests.rating_graphs`` with a fixed seed, and the Gibbs
chains are short and of fixed length where a test is not about choosing it.
"""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.evaluation.explicit_ratings import explicit_ratings, rating_values, weights_look_like_ratings
from kgrec.recommenders.models.svdpp import SVDpp, TrustSVD
from kgrec.recommenders.registry import create, default_models, get
from tests.rating_graphs import PlantedRatings, planted_ratings, records_of, split_rows

FAST = {"n_iter": 100, "checkpoint": 50, "max_iter": 200}


def _split(g: PlantedRatings) -> tuple[GraphSnapshot, list[str], list[str], np.ndarray, np.ndarray]:
    train, test = split_rows(g.rows)
    snap = build_snapshot(records_of(g, train))
    users, items = [g.rows[n][0] for n in test], [g.rows[n][1] for n in test]
    return snap, users, items, np.array([g.rows[n][2] for n in test]), np.array([g.rows[n][3] for n in test])


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def planted() -> PlantedRatings:
    return planted_ratings(users=300, items=200, mean_ratings=30, seed=3)


def test_recovers_planted_biases_and_factors(planted: PlantedRatings) -> None:
    """Plain Bayesian MF with biases (no implicit, flipped or tag features, so the biases are the
    model's own) finds the planted biases, and its taste term the planted ⟨p_u, q_i⟩."""
    snap, users, items, stars, clean = _split(planted)
    model = create("svdpp", implicit=False, flipped=False, tags=False, **FAST).fit(snap)
    f = model.factors
    assert f is not None
    ub = np.array([f.user_bias[snap.users.index[u]] for u in snap.users.ids])
    ib = np.array([f.item_bias[snap.items.index[i]] for i in snap.items.ids])
    rated = explicit_ratings(snap)
    assert rated is not None
    active = np.bincount(rated.user, minlength=len(snap.users)) >= 10  # a bias needs ratings to show
    seen = np.bincount(rated.item, minlength=len(snap.items)) >= 10
    assert np.corrcoef(ub[active], np.array([planted.user_bias[u] for u in snap.users.ids])[active])[0, 1] > 0.9
    assert np.corrcoef(ib[seen], np.array([planted.item_bias[i] for i in snap.items.ids])[seen])[0, 1] > 0.9
    taste = np.array([p.own for p in (f.parts(snap.users.index[u], snap.items.index[i]) for u, i in zip(
        users, items, strict=True))])
    planted_taste = clean - np.array([3.0 + planted.user_bias[u] + planted.item_bias[i]  # 3: the middle of 1..5
                                      for u, i in zip(users, items, strict=True)])
    assert np.corrcoef(taste, planted_taste)[0, 1] > 0.7
    predicted = model.predict_ratings(users, items)
    biases_only = np.clip(f.mu + np.array([f.user_bias[snap.users.index[u]] + f.item_bias[snap.items.index[i]]
                                           for u, i in zip(users, items, strict=True)]), 1, 5)
    assert _rmse(predicted, stars) < 0.85 * _rmse(biases_only, stars)
    assert _rmse(predicted, clean) < 0.5 * np.std(clean)


def test_default_model_chooses_its_chain_and_beats_the_biases(planted: PlantedRatings) -> None:
    snap, users, items, stars, _ = _split(planted)
    model = create("svdpp", checkpoint=50, max_iter=300).fit(snap)
    entry = model.manifest_entry()
    assert entry is not None and entry["n_iter"] in (50, 100, 150, 200, 250, 300) and not entry["trust_used"]
    assert set(entry["validation_rmse"]) == {"without_trust"} and entry["from"] == "rating"
    base = create("svdpp", implicit=False, flipped=False, tags=False, rank=1, n_iter=50).fit(snap)
    assert _rmse(model.predict_ratings(users, items), stars) < _rmse(base.predict_ratings(users, items), stars)


@pytest.mark.parametrize("seed", [0])
def test_trust_helps_when_planted_and_is_switched_off_when_random(seed: int) -> None:
    """Informative trust: validation keeps it and trustsvd beats svdpp on held-out ratings.
    Random trust (same followers and out-degrees): validation drops it, so trustsvd answers
    exactly as svdpp — while forcing it on does worse."""
    shape = {"users": 400, "items": 300, "mean_ratings": 12, "min_ratings": 2, "community_weight": 0.9,
             "noise": 0.4, "trust_share": 0.7, "factor_scale": 1.0, "seed": seed}
    good = _split(planted_ratings(trust="informative", **shape))
    plain = create("svdpp", **FAST).fit(good[0])
    trusting = create("trustsvd", **FAST).fit(good[0])
    assert trusting.report["trust_used"]
    assert _rmse(trusting.predict_ratings(good[1], good[2]), good[3]) < 0.98 * _rmse(
        plain.predict_ratings(good[1], good[2]), good[3])

    noise = _split(planted_ratings(trust="random", **shape))
    plain = create("svdpp", **FAST).fit(noise[0])
    auto = create("trustsvd", **FAST).fit(noise[0])
    forced = create("trustsvd", trust="on", **FAST).fit(noise[0])
    assert not auto.report["trust_used"]
    np.testing.assert_array_equal(auto.predict_ratings(noise[1], noise[2]), plain.predict_ratings(noise[1], noise[2]))
    assert _rmse(forced.predict_ratings(noise[1], noise[2]), noise[3]) > _rmse(
        plain.predict_ratings(noise[1], noise[2]), noise[3])


def test_trustsvd_reuses_svdpps_validation_chain() -> None:
    from kgrec.recommenders.bundle.model_bundle import fit_models

    g = planted_ratings(users=120, items=80, mean_ratings=15, trust="informative", seed=5)
    snap = build_snapshot(g.records)
    small = {"checkpoint": 20, "max_iter": 60}
    models = fit_models(snap, ["svdpp", "trustsvd"], configs={"svdpp": small, "trustsvd": small})
    alone = create("trustsvd", seed=42, **small).fit(snap)
    reused = models["trustsvd"]
    assert isinstance(reused, TrustSVD) and isinstance(models["svdpp"], SVDpp)
    assert reused.report["curves"] == alone.report["curves"]
    assert reused.report["curves"]["without_trust"] == models["svdpp"].report["curves"]["without_trust"]
    np.testing.assert_array_equal(reused.predict_ratings(["u0001"], ["i0002"]), alone.predict_ratings(["u0001"],
                                                                                                      ["i0002"]))


@pytest.mark.parametrize(("low", "high"), [(1.0, 10.0), (0.5, 4.0)])
def test_any_scale_is_learned_from_weights_and_clipped_to_it(low: float, high: float) -> None:
    """Ratings kept in the weights (``kgrec load csv`` without a rating column) on a 1–10 or a
    0.5–4 scale: learned, and every prediction lies on that scale."""
    g = planted_ratings(users=80, items=60, mean_ratings=15, low=low, high=high, bias_sd=1.5, as_weights=True,
                        seed=2)
    snap = build_snapshot(g.records)
    rated = explicit_ratings(snap)
    assert rated is not None and rated.source == "weight" and (rated.low, rated.high) == (low, high)
    model = create("svdpp", n_iter=30, checkpoint=10, max_iter=30).fit(snap)
    users = [u for u, *_ in g.rows] + ["nobody"]
    items = [i for _, i, *_ in g.rows] + ["nothing"]
    p = model.predict_ratings(users, items)
    assert p.min() >= low and p.max() <= high
    assert np.corrcoef(p[:-1], [r for *_, r, _ in g.rows])[0, 1] > 0.6


def test_unknown_users_and_items_get_the_baseline(planted: PlantedRatings, tmp_path) -> None:
    snap = build_snapshot(planted.records)
    model = create("svdpp", n_iter=30, checkpoint=10, max_iter=30).fit(snap)
    f = model.factors
    assert f is not None
    u, i = snap.users.ids[0], snap.items.ids[0]
    ui, ii = snap.users.index[u], snap.items.index[i]
    p = model.predict_ratings(["nobody", u, "nobody"], [i, "nothing", "nothing"])
    np.testing.assert_allclose(p, np.clip([f.mu + f.item_bias[ii], f.mu + f.user_bias[ui], f.mu], 1, 5))
    explained = model.explain_ratings("nobody", [i, "nothing"])
    assert [e.baseline for e in explained] == ["unknown user", "unknown user and item"]
    assert explained[0].item_bias == f.item_bias[ii] and explained[0].co_rated == ()
    assert model.explain_ratings(u, ["nothing"])[0].baseline == "unknown item"
    assert model.user_scores("nobody") is None
    model.save(tmp_path / "m")
    again = SVDpp.load(tmp_path / "m", snap)
    np.testing.assert_array_equal(again.predict_ratings(["nobody", u], [i, i]), model.predict_ratings(["nobody", u],
                                                                                                      [i, i]))


def test_explanations_add_up_to_the_rating() -> None:
    g = planted_ratings(users=100, items=80, mean_ratings=20, trust="informative", seed=4)
    snap = build_snapshot(g.records)
    model = create("trustsvd", trust="on", n_iter=30, checkpoint=10, max_iter=30).fit(snap)
    for user in snap.users.ids[:10]:
        for e in model.explain_ratings(user, list(snap.items.ids[:20]), limit=3):
            assert abs(e.total() - e.rating) < 1e-9
            assert e.co_rated_omitted + len(e.co_rated) > 0
            shares = [abs(p.contribution) for p in e.co_rated]
            assert shares == sorted(shares, reverse=True)


def test_rating_models_apply_only_to_graphs_with_ratings_and_train_after_the_rankers() -> None:
    counts = build_snapshot(generate(users=60, items=80, seed=1).records)  # Poisson "how often" weights
    assert not SVDpp.applies_to(counts) and not TrustSVD.applies_to(counts)
    rated = build_snapshot(planted_ratings(users=30, items=20, mean_ratings=5, seed=1).records)
    assert SVDpp.applies_to(rated) and not TrustSVD.applies_to(rated)  # no FOLLOWS
    trusted = build_snapshot(planted_ratings(users=30, items=20, mean_ratings=5, trust="informative", seed=1).records)
    assert TrustSVD.applies_to(trusted)
    order = list(default_models())
    listing = [n for n in order if get(n).recommends]
    assert order.index("svdpp") > max(order.index(n) for n in listing), "rating models come after the rankers"
    assert order.index("trustsvd") > order.index("svdpp"), "trustsvd reuses svdpp's chain: fitted after it"
    with pytest.raises(ValueError, match="no explicit ratings"):
        create("svdpp").fit(counts)


# -- which weights are ratings ----------------------------------------------------------------
@pytest.mark.parametrize(("weights", "ratings"), [
    ([0.5, 1, 2, 3, 3.5, 4, 4, 4, 4.5, 5, 5, 3], True),  # MovieLens stars
    ([0.5, 1, 2, 3, 3, 3.5, 4, 4, 4, 2.5], True),  # FilmTrust, 0.5–4
    ([1, 5, 8, 8, 9, 10, 10, 7, 6, 7], True),  # 1–10
    ([1, 1, 1, 1, 2, 2, 3, 4, 7], False),  # counts pile up at 1
    ([1, 2, 3, 3, 4, 3, 2, 5, 6, 12], False),  # beyond 10
    ([1, 1, 1, 1], False),  # binary
    ([1.3, 2.7, 4.1], False),  # off the half-step grid
    ([2.0] * 40 + [3.0] * 30 + [1.0] * 20 + [4.0] * 9 + [10.0], False),  # the top value is a rare outlier
])
def test_which_weights_are_ratings(weights: list[float], ratings: bool) -> None:
    assert weights_look_like_ratings(np.array(weights, dtype=float)) is ratings


def test_the_rating_property_wins_over_weights() -> None:
    g = planted_ratings(users=20, items=15, mean_ratings=5, seed=1)
    snap = build_snapshot(g.records)  # weights 1.0, ratings in the property
    assert np.array_equal(rating_values(snap), snap.ratings.astype(float))
    assert explicit_ratings(snap).source == "rating"
    synthetic = build_snapshot(generate(users=60, items=80, seed=1).records)
    assert np.isnan(rating_values(synthetic)).all() and explicit_ratings(synthetic) is None


def test_the_hybrid_chooses_its_rating_features_on_validation(tmp_path) -> None:
    """On a rating graph the hybrid's rankers are scored with and without the rating group
    (including the predicted rating of ``svdpp``, fitted on the validation cut with the chain
    length ``kgrec train``'s own fit chose); what serves round-trips through save and load."""
    from kgrec.recommenders.bundle.model_bundle import fit_models
    from kgrec.recommenders.hybrid.hybrid_model import Hybrid

    g = planted_ratings(users=150, items=120, mean_ratings=20, seed=6)
    snap = build_snapshot(g.records)
    configs = {"svdpp": {"checkpoint": 20, "max_iter": 40, "serve_dim": 8},
               "hybrid": {"components": ("itemcf", "popularity"), "candidates": 20}}
    models = fit_models(snap, ["svdpp", "itemcf", "hybrid"], configs=configs)
    hybrid = models["hybrid"]
    assert isinstance(hybrid, Hybrid) and hybrid.selection is not None
    choice = hybrid.selection
    assert {"logistic without ratings", "lambdarank without ratings", "logistic", "lambdarank"} == set(choice.rankers)
    keeps = choice.serve == "ranker" and "ratings" not in choice.without
    assert ("predicted_rating" in hybrid.feature_names()) == keeps
    hybrid.save(tmp_path / "h")
    assert (tmp_path / "h" / "rating_model").is_dir() == keeps
    again = Hybrid.load(tmp_path / "h", snap)
    for user in snap.users.ids[:10]:
        assert [(r.item_id, r.score) for r in hybrid.recommend_live(user, 5)] == [
            (r.item_id, r.score) for r in again.recommend_live(user, 5)]
