"""Geographic filters and context on the read path (``near``/``radius_km``, ``at``), the same on the
CLI, and the same items as the stores' ``items_within`` on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.geo import within
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from kgrec.recommenders.serving.geo_query import GeoParameterError, near_mask, parse_point, parse_radius
from kgrec.recommenders.serving.query import Query
from kgrec.recommenders.serving.server import Server
from tests.geo_graphs import CITIES, offset, planted_cities

MODELS = ["geo", "graph_walk", "popularity"]
#: Circles whose edge crosses a neighbourhood of places (300 m across), so some are in and some out.
CIRCLES = [(offset(*CITIES["paris"], 0.0, 0.1), 0.2), (offset(*CITIES["paris"], 0.1, 2.0), 2.1),
           (CITIES["berlin"], 4.05), (offset(*CITIES["austin"], -0.2, 4.1), 0.35), (CITIES["austin"], 9.5)]


@pytest.fixture(scope="module")
def graph() -> tuple[object, GraphSnapshot]:
    records = planted_cities()
    return records, build_snapshot(records)


@pytest.fixture(scope="module")
def server(graph) -> Server:
    _, snap = graph
    return Server(snap, fit_models(snap, MODELS, seed=3), MODELS, "geo", 3)


def _expected(snap: GraphSnapshot, centre: tuple[float, float], r: float) -> set[str]:
    ok = np.isfinite(snap.item_lat)
    ids = [snap.items.ids[i] for i in np.flatnonzero(ok)]
    return {i for i, _ in within(ids, snap.item_lat[ok], snap.item_lon[ok], centre[0], centre[1], r)}


def test_near_keeps_exactly_the_items_inside_the_circle(graph, server: Server) -> None:
    _, snap = graph
    for centre, r in CIRCLES:
        inside = _expected(snap, centre, r)
        mask = near_mask(snap, centre, r)
        assert {snap.items.ids[i] for i in np.flatnonzero(mask)} == inside
        assert 0 < len(inside) < len(snap.items)
        for user in snap.users.ids[::9]:
            served = server.recommend(Query(user, 10, near=centre, radius_km=r))
            assert served and {s.item for s in served} <= inside
            seen = {snap.items.ids[i] for i in snap.user_items(snap.users.index[user])}
            assert not {s.item for s in served} & seen
        # an unknown user is served from the circle too (anonymous popularity)
        assert {s.item for s in server.recommend(Query("someone-new", 5, near=centre, radius_km=r))} <= inside


def test_at_scores_distance_from_where_the_user_is(graph, server: Server) -> None:
    _, snap = graph
    paris_user = next(u for u in snap.users.ids
                      if snap.items.ids[snap.user_items(snap.users.index[u])[0]].startswith("paris"))
    usual = server.recommend(Query(paris_user, 5))
    there = server.recommend(Query(paris_user, 5, at=CITIES["berlin"]))
    assert all(s.item.startswith("paris") for s in usual)
    assert all(s.item.startswith("berlin") and s.source == "geo" for s in there)
    # other models do not measure distance: asking them with ``at`` changes nothing
    plain = server.recommend(Query(paris_user, 5, model="graph_walk", fallback=False))
    assert plain == server.recommend(Query(paris_user, 5, model="graph_walk", fallback=False, at=CITIES["berlin"]))


@pytest.mark.parametrize(("text", "parameter"), [("48.8", "near"), ("91,2", "near"), ("48.8,181", "at"),
                                                   ("a,b", "at"), ("nan,2", "near"), ("1,2,3", "near")])
def test_bad_points_name_the_parameter(text: str, parameter: str) -> None:
    with pytest.raises(GeoParameterError) as bad:
        parse_point(text, parameter)
    assert bad.value.parameter == parameter
    assert parse_point(" 48.85 , 2.35 ", "near") == (48.85, 2.35)


@pytest.mark.parametrize("radius", ["0", "-1", "inf", "nan", "x", "30000"])
def test_bad_radii_name_the_parameter(radius: str) -> None:
    with pytest.raises(GeoParameterError) as bad:
        parse_radius(radius)
    assert bad.value.parameter == "radius_km"


def test_queries_refuse_half_a_circle() -> None:
    with pytest.raises(GeoParameterError, match="radius_km"):
        Query("u", near=(1.0, 2.0))
    with pytest.raises(GeoParameterError, match="near"):
        Query("u", radius_km=3.0)
    with pytest.raises(GeoParameterError) as bad:
        Query("u", at=(100.0, 0.0))
    assert bad.value.parameter == "at"


@pytest.fixture(scope="module")
def bundle(graph, tmp_path_factory) -> Path:
    _, snap = graph
    out = tmp_path_factory.mktemp("geo") / "bundle"
    save_bundle(out, snap, fit_models(snap, MODELS, seed=3), seed=3)
    return out


def test_the_cli_filters_and_refuses_like_the_read_path(graph, bundle: Path, server: Server) -> None:
    _, snap = graph
    user = snap.users.ids[4]
    (centre, r) = CIRCLES[1]
    out = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--user", user, "--k", "5", "--format",
                                    "jsonl", "--model", "geo", "--near", f"{centre[0]},{centre[1]}",
                                    "--radius-km", str(r), "--at", "52.52,13.405"])
    assert out.exit_code == 0, out.output
    got = [x["item"] for x in json.loads(out.output)["recommendations"]]
    want = server.recommend(Query(user, 5, "geo", near=centre, radius_km=r, at=(52.52, 13.405)))
    assert got == [s.item for s in want] and set(got) <= _expected(snap, centre, r)
    for args, option in ((["--near", "48.8,2.3"], "--radius-km"), (["--radius-km", "2"], "--near"),
                         (["--near", "95,2", "--radius-km", "1"], "--near"), (["--at", "x"], "--at"),
                         (["--near", "48.8,2.3", "--radius-km", "-2"], "--radius-km")):
        bad = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--user", user, *args])
        assert bad.exit_code == 2 and option in bad.output, (args, bad.output)


def _check_store(url: str, records, snap: GraphSnapshot) -> None:
    with open_store(url) as store:
        store.load(records)
        for centre, r in CIRCLES:
            listed = {i for i, _ in store.items_within(centre[0], centre[1], r)}
            assert listed == {snap.items.ids[i] for i in np.flatnonzero(near_mask(snap, centre, r))}


def test_the_filter_matches_the_embedded_store(graph, tmp_path) -> None:
    records, snap = graph
    _check_store(f"memory://{tmp_path / 'g'}", records, snap)


@pytest.mark.neo4j
def test_the_filter_matches_neo4j(graph, neo4j_uri: str) -> None:
    records, snap = graph
    with open_store(neo4j_uri) as store:
        store.clear()
    try:
        _check_store(neo4j_uri, records, snap)
    finally:
        with open_store(neo4j_uri) as store:
            store.clear()


@pytest.mark.parametrize("query", ["near={n}&radius_km=2.1", "at=52.52,13.405",
                                   "near={n}&radius_km=2.1&at=30.27,-97.74"], ids=["near", "at", "both"])
def test_api_bodies_equal_cli_lines(graph, bundle: Path, tmp_path: Path, query: str) -> None:
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings

    records, snap = graph
    store = f"memory://{tmp_path / 'g'}"
    with open_store(store) as s:
        s.load(records)
    centre = CIRCLES[1][0]
    query = query.format(n=f"{centre[0]},{centre[1]}")
    users = [*snap.users.ids[:4], "someone-new"]
    (tmp_path / "users.txt").write_text("\n".join(users))
    options = [a for part in query.split("&") for k, v in [part.split("=")]
               for a in ("--" + k.replace("_", "-"), v)]
    # Impressions off: the API's lists leave no skips behind for the next model's list (the CLI logs none).
    client = create_app(Settings(bundle=str(bundle), store=store, impressions=False)).test_client()
    for model in (None, "geo", "graph_walk"):
        out = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--store", store, "--users",
                                        str(tmp_path / "users.txt"), "--format", "jsonl", "--explain", "--k", "5",
                                        *options, *(["--model", model] if model else [])])
        assert out.exit_code == 0, out.output
        lines = [json.loads(x) for x in out.output.splitlines() if x.startswith("{")]
        for line in lines:
            url = f"/v1/users/{line['user']}/recommendations?k=5&explain=true&{query}" + (f"&model={model}" if model
                                                                                        else "")
            api = client.get(url).get_json()
            assert _served(api) == _served(line), (model, line["user"])


def _served(body: dict) -> list[tuple]:
    """What a recommendations body serves (items, order, scores, sources, reasons), leaving aside
    fields other features add to it."""
    return [body["user"], body["model"], body["known_user"]] + [
        (r["item"], r["rank"], r["score"], r["source"], json.dumps(r.get("reasons"))) for r in body["recommendations"]]


@pytest.mark.parametrize(("query", "field"), [("near=91,0&radius_km=1", "near"), ("near=1,2", "radius_km"),
                                              ("radius_km=3", "near"), ("near=1,2&radius_km=0", "radius_km"),
                                              ("at=1;2", "at"), ("at=1,200", "at")])
def test_api_refuses_bad_coordinates_naming_the_parameter(bundle: Path, query: str, field: str) -> None:
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings

    client = create_app(Settings(bundle=str(bundle))).test_client()
    answer = client.get(f"/v1/users/u001/recommendations?{query}")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == field


def test_the_explanation_page_draws_a_map_of_the_users_places(graph, bundle: Path) -> None:
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings

    _, snap = graph
    client = create_app(Settings(bundle=str(bundle))).test_client()
    user = snap.users.ids[2]
    page = client.get(f"/ui/users/{user}?k=5&model=geo").get_data(as_text=True)
    assert page.count('<svg class="map"') >= 3  # one per place near one the user checked in at
    visited = {snap.title(j) for j in snap.user_items(snap.users.index[user])}
    assert any(f"<title>{name} (" in page for name in visited)
    assert 'class="link"' in page and "your places" in page
    # a model whose reasons walk no NEAR hop gets no map
    assert '<svg class="map"' not in client.get(f"/ui/users/{user}?k=5&model=popularity").get_data(as_text=True)


def test_the_latitude_band_keeps_exactly_what_a_full_haversine_keeps() -> None:
    """``NearFilter`` computes distances only inside the circle's latitude band: the same items as
    a haversine over every item, near the poles and across the antimeridian too."""
    from types import SimpleNamespace

    from kgrec.graph.geo import haversine_km
    from kgrec.recommenders.serving.geo_query import NearFilter

    rng = np.random.default_rng(5)
    lat = np.concatenate([rng.uniform(-90, 90, 3000), rng.uniform(88, 90, 300), [np.nan] * 5])
    lon = np.concatenate([rng.uniform(-180, 180, 3000), rng.uniform(-180, 180, 300), [0.0] * 5])
    snap = SimpleNamespace(items=range(len(lat)), item_lat=lat, item_lon=lon)
    nf = NearFilter(snap)  # type: ignore[arg-type]
    ok = np.isfinite(lat)
    for centre, r in [((0.0, 179.9), 50.0), ((89.5, 10.0), 100.0), ((-45.0, -170.0), 2000.0),
                      ((10.0, 10.0), 0.0), ((60.0, 30.0), 20000.0), ((-89.99, 0.0), 30.0)]:
        full = np.zeros(len(lat), dtype=bool)
        full[np.flatnonzero(ok)] = haversine_km(centre[0], centre[1], lat[ok], lon[ok]) <= r
        assert np.array_equal(nf.mask(centre, r), full), (centre, r)
