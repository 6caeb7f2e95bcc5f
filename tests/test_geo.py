"""The location model, NEAR walks and geographic features on small graphs with planted cities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kgrec.graph.geo import haversine_km as graph_haversine
from kgrec.graph.records import Follow, GraphRecords, Interaction, Item, ItemTag, Tag, User
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.recommenders.base import Derived
from kgrec.recommenders.models.geo import Geo
from kgrec.recommenders.models.geo_space import GeoScale, Places, haversine_km, pairwise_km, to_xyz
from kgrec.recommenders.models.near_cells import cell_memberships
from kgrec.recommenders.reason_paths import CYPHER, NEAR_VISITED, path_exists
from kgrec.recommenders.registry import create
from tests.geo_graphs import CITIES, offset, planted_cities, planted_snapshot, without_coordinates


@pytest.fixture(scope="module")
def cities() -> GraphSnapshot:
    return planted_snapshot()


def equal_taste_graph() -> tuple[GraphSnapshot, str, str, str]:
    """A user who checks in around one corner of Paris, and two places the graph cannot tell apart
    except by where they are: the same category, the same six visitors. One is 150 m from the
    user's places, the other 4 km away. Returns (snapshot, user, near place, far place)."""
    lat, lon = CITIES["paris"]
    rec = GraphRecords(tags=[Tag("cat:cafe", "cafe")])
    home = [offset(lat, lon, 0.05 * k, 0.0) for k in range(4)]
    rec.items += [Item(f"home{k}", f"Home {k}", location=p) for k, p in enumerate(home)]
    rec.items += [Item("near", "Near Café", location=offset(lat, lon, 0.0, 0.15)),
                  Item("far", "Far Café", location=offset(lat, lon, 0.0, 4.0))]
    rec.item_tags = [ItemTag(i, "cat:cafe") for i in ("near", "far")]
    rec.users = [User("me")] + [User(f"v{k}") for k in range(6)]
    rec.interactions = [Interaction("me", f"home{k}", 2.0) for k in range(4)]
    for k in range(6):  # the same visitors for both candidates, one home place each
        rec.interactions += [Interaction(f"v{k}", "near"), Interaction(f"v{k}", "far"),
                             Interaction(f"v{k}", f"home{k % 4}")]
    return build_snapshot(rec), "me", "near", "far"


def test_distances_agree_with_the_stores_and_with_chords() -> None:
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 60, 30), rng.uniform(-180, 180, 30)
    ours = haversine_km(lat[0], lon[0], lat, lon)
    assert np.allclose(ours, graph_haversine(float(lat[0]), float(lon[0]), lat, lon), rtol=1e-12)
    xyz = to_xyz(lat, lon)
    assert np.allclose(pairwise_km(xyz[:1], xyz)[0], ours, atol=1e-6)
    paris, london = CITIES["paris"], (51.5074, -0.1278)
    assert abs(float(haversine_km(*paris, *london)) - 343.6) < 1.0


def test_the_unit_is_learned_and_follows_a_stretched_map(cities: GraphSnapshot) -> None:
    places = Places.of(cities)
    assert places is not None
    scale = GeoScale.learn(cities.interactions, places)
    assert 0.01 < scale.unit < 0.3  # places within one neighbourhood: tens to hundreds of metres
    assert list(scale.quantiles) == sorted(scale.quantiles)
    # the same check-ins on a map four times larger (about each city's centre): the unit follows
    lat, lon = places.lat.copy(), places.lon.copy()
    for c_lat, c_lon in CITIES.values():
        near = np.abs(lat - c_lat) < 1
        lat[near] = c_lat + 4 * (lat[near] - c_lat)
        lon[near] = c_lon + 4 * (lon[near] - c_lon)
    stretched = Places.from_arrays(lat, lon)
    assert stretched is not None
    assert GeoScale.learn(cities.interactions, stretched).unit / scale.unit == pytest.approx(4.0, rel=0.02)


def test_prefers_the_near_place_when_taste_is_equal() -> None:
    snap, user, near, far = equal_taste_graph()
    for options in ({"bandwidth": 0.5, "popularity_weight": 1.0, "wide_weight": 0.05, "friend_weight": 0.0},
                    {"bandwidth": 0.75, "popularity_weight": 0.0, "wide_weight": 0.3, "friend_weight": 0.0}):
        model = create("geo", **options).fit(snap)
        scores = model.score_user(user)
        assert scores is not None
        i, j = snap.items.index[near], snap.items.index[far]
        assert scores[i] > scores[j], options
    # the walk cannot tell them apart without NEAR paths, and prefers the near one with them
    plain = create("graph_walk").fit(snap).score_user(user)
    walk = create("graph_walk", near_weight=0.3, near_cell=0.9).fit(snap).score_user(user)
    assert plain is not None and walk is not None
    assert plain[snap.items.index[near]] == pytest.approx(plain[snap.items.index[far]])
    assert walk[snap.items.index[near]] > walk[snap.items.index[far]]


def test_options_are_chosen_on_the_cut_unless_set(cities: GraphSnapshot) -> None:
    chosen = create("geo").fit(cities)
    assert isinstance(chosen, Geo) and chosen.validation
    best = max(chosen.validation, key=lambda k: chosen.validation[k])
    assert best == ",".join(f"{k}={v}" for k, v in chosen.chosen.items())
    fixed = create("geo", bandwidth=0.25, popularity_weight=0.5, wide_weight=0.0, friend_weight=0.0).fit(cities)
    assert isinstance(fixed, Geo)
    assert fixed.chosen == {"bandwidth": 0.25, "popularity_weight": 0.5, "wide_weight": 0.0, "friend_weight": 0.0}
    assert fixed.validation == {}
    partly = create("geo", bandwidth=0.75).fit(cities)
    assert isinstance(partly, Geo) and partly.chosen["bandwidth"] == 0.75
    assert all(k.startswith("bandwidth=0.75,") for k in partly.validation)


def test_reasons_name_the_distance_and_the_place_and_are_real_paths(cities: GraphSnapshot) -> None:
    model = create("geo", bandwidth=0.5, popularity_weight=0.5, wide_weight=0.05, friend_weight=0.3).fit(cities)
    kinds = set()
    for user in cities.users.ids[:12]:
        for rec in model.recommend(user, 3):
            reasons = model.explain(user, rec.item_id)
            assert reasons and all(r.kind == "evidence" and path_exists(cities, r) for r in reasons)
            for r in reasons:
                assert r.cypher in CYPHER.values() and r.params == {f"n{k}": n.id for k, n in enumerate(r.nodes)}
                kinds.add(tuple(x.type for x in r.rels))
            near = [r for r in reasons if r.rels and r.rels[-1].type is Derived.NEAR]
            assert near and near[0].nodes[-1].id == rec.item_id
            place = cities.items.index[near[0].nodes[-2].id]
            km = float(haversine_km(cities.item_lat[place], cities.item_lon[place],
                                    cities.item_lat[cities.items.index[rec.item_id]],
                                    cities.item_lon[cities.items.index[rec.item_id]]))
            shown = f"{km * 1000:.0f} m" if km < 1 else f"{km:.1f} km"
            assert near[0].text.startswith(f"{shown} from {cities.title(place)}, where ")
    assert tuple(r.type for r in NEAR_VISITED[1]) in kinds and len(kinds) >= 3  # own, a friend's, the audience


def test_scores_from_a_place_prefer_what_is_near_it(cities: GraphSnapshot) -> None:
    model = create("geo").fit(cities)
    assert isinstance(model, Geo)
    paris_user = next(u for u in cities.users.ids if "paris" in cities.items.ids[cities.user_items(
        cities.users.index[u])[0]])
    berlin = CITIES["berlin"]
    for user in (paris_user, "someone-new"):
        scores = model.score_from_place(user, *berlin)
        assert scores is not None
        top = np.argsort(-scores)[:5]
        assert all(cities.items.ids[i].startswith("berlin0") for i in top)
    assert model.score_user("someone-new") is None


def test_without_coordinates_the_model_does_not_apply_and_the_hybrid_is_unchanged(tmp_path) -> None:
    records = without_coordinates(planted_cities(users=60))
    flat = build_snapshot(records)
    assert not Geo.applies_to(flat) and Geo.applies_to(planted_snapshot(users=60))
    components = ("graph_walk", "itemcf", "popularity")
    with_geo = create("hybrid", components=(*components, "geo"), candidates=20).fit(flat)
    without = create("hybrid", components=components, candidates=20).fit(flat)
    assert with_geo.feature_names() == without.feature_names()
    assert not any(n.startswith("geo") for n in with_geo.feature_names())
    for user in flat.users.ids[:15]:
        a, b = with_geo.recommend(user, 10), without.recommend(user, 10)
        assert [(r.item_id, r.score) for r in a] == [(r.item_id, r.score) for r in b]


def test_graph_walk_near_paths_add_up_and_vanish_without_coordinates(cities: GraphSnapshot) -> None:
    near = create("graph_walk", near_weight=0.3).fit(cities)
    found = 0
    for user in cities.users.ids[:10]:
        for rec in near.recommend(user, 3):
            reasons = near.explain(user, rec.item_id)
            assert abs(sum(r.contribution for r in reasons) - rec.score) < 1e-9
            assert all(path_exists(cities, r) for r in reasons)
            found += sum(r.rels[-1].type is Derived.NEAR for r in reasons)
    assert found > 0
    flat = build_snapshot(without_coordinates(planted_cities()))
    a = create("graph_walk", near_weight=0.3).fit(flat)
    b = create("graph_walk").fit(flat)
    for user in flat.users.ids[:10]:
        assert np.array_equal(a.score_user(user), b.score_user(user))


def test_cells_link_close_places_only() -> None:
    lat = np.array([30.0, 30.0 + 0.2 / 111.2, 30.0 + 5 / 111.2, math.nan])
    lon = np.array([-97.0, -97.0, -97.0, 0.0])
    cells = cell_memberships(lat, lon, 1.0)
    shared = (cells @ cells.T).toarray()
    assert shared[0, 1] >= 1 and shared[0, 2] == 0 and cells[3].nnz == 0


def test_the_hybrid_learns_from_geography_and_explains_with_it(cities: GraphSnapshot, tmp_path) -> None:
    from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle

    models = fit_models(cities, ["hybrid", "graph_walk", "geo"], seed=3,
                        configs={"hybrid": {"components": ("graph_walk", "itemcf", "geo"), "candidates": 20}})
    hybrid = models["hybrid"]
    assert hybrid.feature_names()[-12:][0] == "geo_known"
    save_bundle(tmp_path / "b", cities, models, seed=3)
    loaded = Bundle.load(tmp_path / "b")
    for name in ("hybrid", "geo"):
        for user in cities.users.ids[:8]:
            a, b = models[name].recommend(user, 5), loaded.models[name].recommend(user, 5)
            assert [(r.item_id, r.score) for r in a] == [(r.item_id, r.score) for r in b]
            if a:
                assert models[name].explain(user, a[0].item_id) == loaded.models[name].explain(user, a[0].item_id)
                assert all(path_exists(cities, r) for r in loaded.models[name].explain(user, a[0].item_id))
    at = hybrid.score_from_place(cities.users.ids[0], *CITIES["austin"])
    assert at is None or np.isfinite(at).any()


def test_friends_reasons_walk_the_follows_edge_the_graph_has() -> None:
    snap = equal_taste_graph()[0]
    rec = GraphRecords(users=[User("me"), User("pal")], items=[Item(i, snap.title(k), location=(
        float(snap.item_lat[k]), float(snap.item_lon[k]))) for k, i in enumerate(snap.items.ids)],
        interactions=[Interaction("me", "home0", 3.0), Interaction("pal", "home3", 1.0),
                      Interaction("pal", "far", 1.0)], follows=[Follow("pal", "me")])
    g = build_snapshot(rec)
    model = create("geo", bandwidth=0.75, popularity_weight=0.0, wide_weight=0.0, friend_weight=1.0).fit(g)
    reasons = model.explain("me", "home3")
    friend = [r for r in reasons if len(r.nodes) == 4]
    assert friend and friend[0].rels[0].forward is False and path_exists(g, friend[0])


def test_the_hybrids_cut_twin_of_geo_takes_the_choice_made_on_the_same_cut(cities: GraphSnapshot) -> None:
    from kgrec.recommenders.hybrid.parts import cut_choices

    geo = create("geo", seed=3).fit(cities)
    assert isinstance(geo, Geo)
    fresh = lambda name: create(name, seed=3)  # noqa: E731 - what the hybrid would make
    assert cut_choices({"geo": geo}, fresh, ["geo", "itemcf"], cities, 0.2) == {"geo": geo.chosen}
    assert cut_choices({"geo": geo}, fresh, ["geo"], cities, 0.3) == {}  # another cut: choose again
    assert cut_choices({"geo": geo}, lambda name: create(name, seed=4), ["geo"], cities, 0.2) == {}
