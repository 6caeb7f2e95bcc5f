"""The profile recommender on a graph where occupation and gender decide taste (``tests.profile_graphs``):
newcomers held out whole are served better than by popularity, from their attributes alone; the
explanations name the attributes that decide; what the fit never saw falls back as documented; the
read path serves a user the bundle never saw from the attributes the store holds."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.graph.schema import Label
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.evaluation.ranking_metrics import ndcg_of_lists
from kgrec.recommenders.models.profile import Profile
from kgrec.recommenders.reason_paths import CYPHER, PEER_GROUP
from kgrec.recommenders.registry import create, default_models
from kgrec.recommenders.serving.query import Query, UserState
from kgrec.recommenders.serving.server import Server
from tests.profile_graphs import planted_snapshot

ENGINEER_MEN = frozenset({"occupation:engineer", "gender:M", "age:25-34", "region:3"})


@pytest.fixture(scope="module")
def planted() -> GraphSnapshot:
    return planted_snapshot()


@pytest.fixture(scope="module")
def split(planted: GraphSnapshot) -> tuple[GraphSnapshot, np.ndarray]:
    """The graph without the interactions of a fifth of its users (held out whole: newcomers)."""
    rng = np.random.default_rng(5)
    held = np.sort(rng.choice(len(planted.users), size=len(planted.users) // 5, replace=False))
    keep = np.ones(len(planted.users), dtype=bool)
    keep[held] = False
    m = planted.interactions.multiply(keep[:, None]).tocsr()
    m.eliminate_zeros()
    return planted.with_interactions(m), held


@pytest.fixture(scope="module")
def fitted(split: tuple[GraphSnapshot, np.ndarray]) -> Profile:
    model = create("profile", seed=3).fit(split[0])
    assert isinstance(model, Profile)
    return model


def _attributes(snapshot: GraphSnapshot, u: int) -> list[str]:
    ua = snapshot.user_attributes
    assert ua is not None
    return [snapshot.attributes.ids[a] for a in ua.indices[ua.indptr[u]:ua.indptr[u + 1]]]


def test_newcomers_known_by_their_attributes_beat_popularity(planted, split, fitted) -> None:
    train, held = split
    popular = np.argsort(-np.bincount(train.interactions.indices, minlength=len(train.items)), kind="stable")[:10]
    ours, theirs, targets = [], [], []
    for u in held.tolist():
        scores = fitted.score_profile(_attributes(planted, u), None)
        assert scores is not None
        ours.append(np.argsort(-scores, kind="stable")[:10])
        theirs.append(popular)
        targets.append(planted.user_items(u))
    profile, popularity = ndcg_of_lists(ours, targets, 10).mean(), ndcg_of_lists(theirs, targets, 10).mean()
    assert profile > 1.5 * popularity, (profile, popularity)


def test_the_choice_is_made_on_held_out_users_and_recorded(fitted) -> None:
    """The kinds that decide taste are kept; what was measured is in the manifest entry."""
    report = fitted.manifest_entry()
    assert report is not None
    assert {"occupation", "gender"} <= set(report["kinds"])
    assert report["validation_users"] > 0 and report["ndcg_at_10"] > report["global_popularity_ndcg_at_10"]
    assert report["history"]["history_half"] > 0


def test_explanations_name_the_deciding_attributes(planted, fitted) -> None:
    """An engineer (men) newcomer: the top items' attribute paths go through occupation engineer and
    gender M, each through a real person who has it and chose the item, and add up to the score."""
    scores = fitted.score_profile(ENGINEER_MEN, None)
    assert scores is not None
    top = [planted.items.ids[j] for j in np.argsort(-scores, kind="stable")[:3]]
    for item, explained in zip(top, fitted.explain_profile("newbie", ENGINEER_MEN, None, top), strict=True):
        peers = [r for r in explained.reasons if r.cypher == CYPHER[PEER_GROUP]]
        assert peers, f"no attribute path for {item}"
        strongest = max(peers, key=lambda r: r.contribution)
        assert strongest.nodes[1].id in {"occupation:engineer", "gender:M"}
        assert "engineer" in " ".join(r.text for r in peers)
        for r in peers:
            assert r.nodes[0].id == "newbie" and r.nodes[1].label is Label.ATTRIBUTE and r.nodes[-1].id == item
            v = planted.users.index[r.nodes[2].id]
            assert r.nodes[1].id in _attributes(planted, v) and item in {planted.items.ids[j]
                                                                          for j in planted.user_items(v)}
        total = sum(r.contribution for r in explained.reasons) + explained.omitted_contribution
        assert total == pytest.approx(scores[planted.items.index[item]], abs=1e-9)


def test_unknown_attribute_values_fall_back_as_documented(planted, fitted) -> None:
    """An attribute the fit never saw counts as not given: alone it gives nothing to score (None:
    the chain's next source serves), beside known ones it changes nothing."""
    assert fitted.score_profile({"occupation:astronaut", "planet:mars"}, None) is None
    known = fitted.score_profile({"occupation:engineer"}, None)
    mixed = fitted.score_profile({"occupation:engineer", "occupation:astronaut"}, None)
    assert known is not None and mixed is not None
    np.testing.assert_array_equal(known, mixed)
    assert fitted.explain_profile("x", {"planet:mars"}, None, [planted.items.ids[0]])[0].reasons == ()


def test_history_is_blended_in_as_it_grows(planted, fitted) -> None:
    """The same attributes with a longer history move the list towards that history's items."""
    artists = [planted.items.ids[j] for j in planted.user_items(planted.users.index["p001"])]  # an artist
    alone = fitted.score_profile(ENGINEER_MEN, None)
    one = fitted.score_profile(ENGINEER_MEN, {artists[0]: 1.0})
    many = fitted.score_profile(ENGINEER_MEN, dict.fromkeys(artists, 1.0))
    assert alone is not None and one is not None and many is not None
    genre = planted.item_tags[planted.items.index[artists[0]]].indices[0]
    same = planted.item_tags[:, genre].toarray().ravel() > 0

    def share(scores: np.ndarray) -> float:
        return float(same[np.argsort(-scores, kind="stable")[:10]].mean())

    assert share(alone) <= share(one) <= share(many) and share(many) > share(alone)
    assert fitted.score_profile(set(), {"no-such-item": 1.0}) is None


def test_profile_is_a_default_ahead_of_popularity_only_where_attributes_exist(planted, snapshot) -> None:
    order = default_models()
    assert order.index("profile") < order.index("popularity")
    assert Profile.applies_to(planted) and not Profile.applies_to(snapshot)


def test_the_read_path_serves_a_newcomer_from_the_stores_attributes(planted, fitted, split) -> None:
    train = split[0]
    models = {"itemcf": create("itemcf").fit(train), "profile": fitted, "popularity": create("popularity").fit(train)}
    server = Server(train, models, ["itemcf", "profile", "popularity"])
    served = server.recommend(Query("newbie", 5, explain=True), UserState(attributes=ENGINEER_MEN))
    assert [s.source for s in served] == ["profile"] * 5
    assert all(any(r.nodes[1].id == "occupation:engineer" for r in s.reasons if len(r.nodes) > 2) for s in served)
    anonymous = server.recommend(Query("newbie", 5), UserState(attributes=frozenset()))
    assert [s.source for s in anonymous] == ["popularity"] * 5
    unknown = server.recommend(Query("newbie", 5), UserState(attributes=frozenset({"occupation:astronaut"})))
    assert [s.source for s in unknown] == ["popularity"] * 5
    used, reasons = server.explain("newbie", served[0].item, state=UserState(attributes=ENGINEER_MEN))
    assert used == "profile" and any(r.cypher == CYPHER[PEER_GROUP] for r in reasons)
