"""Every cookbook query on a real Neo4j loaded with the synthetic graph.

Each test computes the rows it expects in plain Python from the same records (and the
recommendations and vectors this module writes back), then compares them with what the
server returns: the queries are checked for what they say, not only for running.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np
import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.cypher import Cookbook, run
from kgrec.graph.recommendation_writeback import recommendation_rows, write_recommendations
from kgrec.graph.records import Dislike
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import SyntheticGraph, generate
from kgrec.recommenders.registry import create
from tests.test_cypher_cookbook import IMPRESSION_QUERIES  # exercised in test_cypher_cookbook.py

#: Exercised against Neo4j on a graph with coordinates in test_cypher_geo_neo4j.py.
GEO_QUERIES = {"friends_near_me", "activity_centres", "recommendations_within"}

pytestmark = pytest.mark.neo4j

K = 10
DIM = 8
INDEX = "cookbook_item_test"
PROPERTY = "emb_cookbooktest"
# Literal dimension and name: index OPTIONS are not parameterisable, and this is test data.
# Quantization (on by default in 5.26) perturbs scores enough to reorder close neighbours.
CREATE_INDEX = (
    "CREATE VECTOR INDEX cookbook_item_test IF NOT EXISTS FOR (i:Item) ON (i.emb_cookbooktest) "
    "OPTIONS {indexConfig: {`vector.dimensions`: 8, `vector.similarity_function`: 'cosine', "
    "`vector.quantization.enabled`: false}}"
)
SET_VECTORS = "UNWIND $rows AS row MATCH (i:Item {id: row.id}) SET i.emb_cookbooktest = row.vec"


class World:
    """The graph as plain Python: what every expectation below is computed from."""

    def __init__(self, g: SyntheticGraph) -> None:
        r = g.records
        self.records = r
        self.items = {i.id: i for i in r.items}
        self.tags = {t.id: t for t in r.tags}
        self.played: dict[str, dict[str, float]] = defaultdict(dict)
        self.audience: dict[str, set[str]] = defaultdict(set)
        for x in r.interactions:
            self.played[x.user][x.item] = x.weight
            self.audience[x.item].add(x.user)
        self.item_tags: dict[str, set[str]] = defaultdict(set)
        self.tagged_items: dict[str, set[str]] = defaultdict(set)
        for x in r.item_tags:
            self.item_tags[x.item].add(x.tag)
            self.tagged_items[x.tag].add(x.item)
        self.follows: dict[str, set[str]] = defaultdict(set)
        for f in r.follows:
            self.follows[f.user].add(f.friend)
        self.user_tags: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.taggers: dict[str, set[str]] = defaultdict(set)
        for t in r.taggings:
            self.user_tags[(t.user, t.item)].add(t.tag)
            self.taggers[t.tag].add(t.user)
        self.recs: dict[str, dict[str, list[tuple[str, float, int]]]] = {}
        self.vectors: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def world(neo4j_uri: str) -> Iterator[tuple[object, World]]:
    g = generate(users=60, items=90, seed=11)
    played = sorted((x.user, x.item) for x in g.records.interactions)
    g.records.dislikes = [Dislike(u, i, 1_700_000_000 + n) for n, (u, i) in enumerate(played[:3])]
    g.records.dislikes += [Dislike(played[0][0], "i0089", 1_600_000_000)]
    g.records.hidden = ["i0001", "i0002"]
    w = World(g)
    snap = build_snapshot(g.records)
    store = open_store(neo4j_uri)
    try:
        store.clear()
        store.load(g.records)
        for name in ("popularity", "itemcf"):
            model = create(name, seed=1).fit(snap)
            rows = list(recommendation_rows(model, snap.users.ids, K))
            write_recommendations(store, name, rows, users=snap.users.ids, at=1_700_000_000)
            by_user: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
            for user, item, score, rank in rows:
                by_user[user].append((item, score, rank))
            w.recs[name] = by_user
        rng = np.random.default_rng(5)
        w.vectors = {i: rng.normal(size=DIM) for i in sorted(w.items)}
        store.run_write(SET_VECTORS, {"rows": [{"id": i, "vec": v.tolist()} for i, v in w.vectors.items()]})
        store.run_write(CREATE_INDEX, {})
        store.run_write("CALL db.awaitIndexes(300)", {})
        yield store, w
    finally:
        store.run_write("DROP INDEX cookbook_item_test IF EXISTS", {})
        store.clear()
        store.close()


def q(store: object, name: str, **params: object) -> list[dict]:
    return run(store, name, params)


def busiest_user(w: World, need: str = "follows") -> str:
    users = sorted(w.played)
    if need == "follows":
        return max(users, key=lambda u: (len(w.follows[u]), u))
    return max(users, key=lambda u: (sum(1 for (uu, _i) in w.user_tags if uu == u), u))


def test_graph_summary(world) -> None:
    store, w = world
    r = w.records
    n_recs = sum(len(v) for recs in w.recs.values() for v in recs.values())
    expected = {
        ("node", "User"): len(r.users),
        ("node", "Item"): len(r.items),
        ("node", "Tag"): len(r.tags),
        ("relationship", "INTERACTED"): len(r.interactions),
        ("relationship", "TAGGED"): len(r.taggings),
        ("relationship", "HAS_TAG"): len(r.item_tags),
        ("relationship", "FOLLOWS"): len(r.follows),
        ("relationship", "RECOMMENDED"): n_recs,
        ("relationship", "DISLIKED"): len(r.dislikes),
        ("node", "KgrecState"): 1,  # holds the hidden items' change token
    }
    rows = q(store, "graph_summary")
    assert {(x["kind"], x["name"]): x["count"] for x in rows} == expected
    assert [(x["kind"], x["name"]) for x in rows] == sorted(expected)


def test_user_history(world) -> None:
    store, w = world
    user = busiest_user(w, need="tags")
    rows = q(store, "user_history", user=user, limit=100)
    expected = sorted(w.played[user].items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(x["item"], x["weight"]) for x in rows] == expected
    for x in rows:
        assert x["title"] == w.items[x["item"]].title
        assert x["tags"] == [w.tags[t].name for t in sorted(w.item_tags[x["item"]])]
        assert x["user_tags"] == sorted(w.user_tags[(user, x["item"])])
    assert any(x["user_tags"] for x in rows)
    assert len(q(store, "user_history", user=user, limit=3)) == 3


def test_also_played_with_lift(world) -> None:
    store, w = world
    item = max(sorted(w.audience), key=lambda i: len(w.audience[i]))
    n_users = sum(1 for u in w.played if w.played[u])
    expected = []
    for y in w.audience:
        co = len(w.audience[item] & w.audience[y])
        if y != item and co >= 2:
            lift = co * n_users / (len(w.audience[item]) * len(w.audience[y]))
            expected.append((y, co, len(w.audience[y]), lift))
    expected.sort(key=lambda e: (-e[3], -e[1], e[0]))
    rows = q(store, "also_played", item=item, min_co=2, k=K)
    assert len(rows) == min(K, len(expected)) > 0
    assert [(x["item"], x["co"], x["played"]) for x in rows] == [e[:3] for e in expected[:K]]
    assert [x["lift"] for x in rows] == pytest.approx([e[3] for e in expected[:K]])


def test_shared_tags(world) -> None:
    store, w = world
    item = max(sorted(w.item_tags), key=lambda i: len(w.item_tags[i]))
    mine = w.item_tags[item]
    expected = []
    for y, tags in w.item_tags.items():
        shared = mine & tags
        if y != item and shared:
            expected.append((y, len(shared), len(shared) / len(mine | tags), sorted(shared)))
    expected.sort(key=lambda e: (-e[1], -e[2], e[0]))
    rows = q(store, "shared_tags", item=item, k=K)
    assert [(x["item"], x["shared"]) for x in rows] == [(e[0], e[1]) for e in expected[:K]]
    assert [x["jaccard"] for x in rows] == pytest.approx([e[2] for e in expected[:K]])
    assert [x["tags"] for x in rows] == [[w.tags[t].name for t in e[3]] for e in expected[:K]]


def test_friends_like(world) -> None:
    store, w = world
    user = busiest_user(w)
    friends: dict[str, list[str]] = defaultdict(list)
    weight: Counter = Counter()
    for f in sorted(w.follows[user]):
        for item, wt in w.played[f].items():
            if item not in w.played[user]:
                friends[item].append(f)
                weight[item] += wt
    expected = sorted(friends, key=lambda i: (-len(friends[i]), -weight[i], i))[:K]
    rows = q(store, "friends_like", user=user, k=K)
    assert [x["item"] for x in rows] == expected
    for x in rows:
        assert x["who"] == friends[x["item"]]
        assert x["friends"] == len(friends[x["item"]])
        assert x["weight"] == pytest.approx(weight[x["item"]])
        assert x["item"] not in w.played[user]


def test_tag_neighbourhood(world) -> None:
    store, w = world
    tag = max(sorted(w.taggers), key=lambda t: (len(w.taggers[t]), t))
    expected = []
    for o, items in w.tagged_items.items():
        shared = len(items & w.tagged_items[tag])
        if o != tag and shared:
            expected.append((o, shared, len(w.taggers[tag] & w.taggers[o])))
    expected.sort(key=lambda e: (-e[1], -e[2], e[0]))
    rows = q(store, "tag_neighbourhood", tag=tag, k=K)
    assert [(x["tag"], x["shared_items"], x["shared_taggers"]) for x in rows] == expected[:K]
    assert all(x["name"] == w.tags[x["tag"]].name for x in rows)


def _explaining_paths(w: World, user: str, item: str) -> list[tuple[str, list[str], list[str]]]:
    paths = []
    for f in w.follows[user]:
        if item in w.played[f]:
            paths.append(("followed user played it", [user, f, item], ["FOLLOWS", "INTERACTED"]))
    for j in w.played[user]:
        for t in w.item_tags[j] & w.item_tags[item]:
            rels = ["INTERACTED", "HAS_TAG", "HAS_TAG"]
            paths.append(("shares a tag with an item you played", [user, j, t, item], rels))
        for v in w.audience[j]:
            if v != user and item in w.played[v]:
                paths.append(
                    ("played by someone who played your items", [user, j, v, item], ["INTERACTED"] * 3)
                )
    return sorted(paths)


def test_explain_recommendation(world) -> None:
    store, w = world
    user = busiest_user(w)
    item, score, rank = w.recs["itemcf"][user][0]
    expected = _explaining_paths(w, user, item)
    rows = q(store, "explain_recommendation", user=user, item=item, model="itemcf", limit=100_000)
    assert sorted((x["why"], x["ids"], x["rels"]) for x in rows) == expected
    assert {x["why"] for x in rows} >= {"played by someone who played your items"}
    assert all(x["rank"] == rank and x["score"] == pytest.approx(score) for x in rows)
    # A recommendation that was never written explains nothing.
    assert q(store, "explain_recommendation", user=user, item=item, model="nope", limit=10) == []


def test_user_recommendations(world) -> None:
    store, w = world
    user = busiest_user(w)
    for model in ("popularity", "itemcf"):
        rows = q(store, "user_recommendations", user=user, model=model, k=5)
        expected = w.recs[model][user][:5]
        assert [(x["item"], x["rank"]) for x in rows] == [(i, r) for i, _s, r in expected]
        assert [x["score"] for x in rows] == pytest.approx([s for _i, s, _r in expected])
        assert all(x["at"] == 1_700_000_000 and x["title"] == w.items[x["item"]].title for x in rows)


def test_model_overlap(world) -> None:
    store, w = world
    user = busiest_user(w)
    a = {i for i, _s, _r in w.recs["popularity"][user]}
    b = {i for i, _s, _r in w.recs["itemcf"][user]}
    [row] = q(store, "model_overlap", user=user, model_a="popularity", model_b="itemcf")
    assert (row["n_a"], row["n_b"], row["n_shared"]) == (len(a), len(b), len(a & b))
    assert row["jaccard"] == pytest.approx(len(a & b) / len(a | b))
    assert (row["shared"], row["only_a"], row["only_b"]) == (sorted(a & b), sorted(a - b), sorted(b - a))
    [empty] = q(store, "model_overlap", user=user, model_a="nope", model_b="nada")
    assert (empty["n_a"], empty["n_b"], empty["jaccard"]) == (0, 0, 0.0)


def test_popularity_bias(world) -> None:
    store, w = world
    played = {i: len(w.audience[i]) for i in w.items}
    order = sorted(played, key=lambda i: (-played[i], i))
    play_rank = {i: n + 1 for n, i in enumerate(order)}
    for model in ("popularity", "itemcf"):
        recommended = Counter(i for recs in w.recs[model].values() for i, _s, _r in recs)
        expected = sorted(recommended, key=lambda i: (-recommended[i], -played[i], i))[:K]
        rows = q(store, "popularity_bias", model=model, k=K)
        assert [x["item"] for x in rows] == expected
        for x in rows:
            assert (x["recommended"], x["played"], x["play_rank"], x["n_items"]) == (
                recommended[x["item"]], played[x["item"]], play_rank[x["item"]], len(w.items))


def test_vector_neighbours_match_numpy_cosine(world) -> None:
    store, w = world
    ids = sorted(w.vectors)
    m = np.array([w.vectors[i] for i in ids])
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    for item in ids[:5]:
        cos = m @ m[ids.index(item)]
        order = [ids[j] for j in np.argsort(-cos) if ids[j] != item][:K]
        rows = q(store, "vector_neighbours", index=INDEX, property=PROPERTY, item=item, k=K)
        assert [x["item"] for x in rows] == order
        expected_scores = [(1 + cos[ids.index(i)]) / 2 for i in order]
        assert [x["score"] for x in rows] == pytest.approx(expected_scores, abs=1e-5)


def test_taste_communities(world) -> None:
    store, w = world
    pairs = set()
    for a, friends in w.follows.items():
        for b in friends:
            if a < b or a not in w.follows[b]:
                pairs.add((a, b))
    groups: dict[str, set[str]] = defaultdict(set)
    friendships: Counter = Counter()
    for a, b in pairs:
        shared = set(w.played[a]) & set(w.played[b])
        if len(shared) < 2:
            continue
        counts = Counter(t for i in shared for t in w.item_tags[i])
        if not counts:
            continue
        weight = {t: n * math.log(len(w.items) / len(w.tagged_items[t])) for t, n in counts.items()}
        top = min(weight, key=lambda t: (-weight[t], t))
        groups[top] |= {a, b}
        friendships[top] += 1
    expected = sorted(groups, key=lambda t: (-len(groups[t]), -friendships[t], t))[:K]
    rows = q(store, "taste_communities", min_shared=2, k=K)
    assert [x["tag"] for x in rows] == expected
    for x in rows:
        assert x["members"] == sorted(groups[x["tag"]])
        assert (x["size"], x["friendships"]) == (len(groups[x["tag"]]), friendships[x["tag"]])


def test_similar_users(world) -> None:
    store, w = world
    user = busiest_user(w)
    mine = set(w.played[user])
    expected = []
    for v, items in w.played.items():
        shared = len(mine & set(items))
        if v != user and shared:
            expected.append((v, shared, shared / len(mine | set(items)), v in w.follows[user]))
    expected.sort(key=lambda e: (-e[2], -e[1], e[0]))
    rows = q(store, "similar_users", user=user, k=K)
    assert [(x["user"], x["shared"], x["follows"]) for x in rows] == [(e[0], e[1], e[3]) for e in expected[:K]]
    assert [x["jaccard"] for x in rows] == pytest.approx([e[2] for e in expected[:K]])


def test_model_summary(world) -> None:
    store, w = world
    rows = q(store, "model_summary")
    assert [x["model"] for x in rows] == sorted(w.recs)
    for x in rows:
        recs = w.recs[x["model"]]
        items = {i for v in recs.values() for i, _s, _r in v}
        scores = [s for v in recs.values() for _i, s, _r in v]
        assert x["users"] == sum(1 for v in recs.values() if v)
        assert x["recommendations"] == len(scores)
        assert x["items"] == len(items)
        assert x["coverage"] == pytest.approx(len(items) / len(w.items))
        assert (x["min_score"], x["max_score"]) == pytest.approx((min(scores), max(scores)))
        assert math.isfinite(x["max_score"])


def test_user_dislikes(world) -> None:
    store, w = world
    user = w.records.dislikes[0].user
    rows = q(store, "user_dislikes", user=user, limit=10)
    mine = sorted((d for d in w.records.dislikes if d.user == user), key=lambda d: (-d.ts, d.item))
    assert [x["item"] for x in rows] == [d.item for d in mine]
    assert [x["also_played"] for x in rows] == [d.item in w.played[user] for d in mine]
    assert any(x["also_played"] for x in rows) and not all(x["also_played"] for x in rows)


def test_hidden_items(world) -> None:
    store, w = world
    rows = q(store, "hidden_items", limit=10)
    assert sorted(x["item"] for x in rows) == sorted(w.records.hidden)
    for x in rows:
        assert x["played"] == len(w.audience[x["item"]])
        assert x["disliked"] == sum(d.item == x["item"] for d in w.records.dislikes)


def test_every_cookbook_query_is_exercised() -> None:
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    covered = {"graph_summary", "user_history", "also_played", "shared_tags", "friends_like", "tag_neighbourhood",
               "explain_recommendation", "user_recommendations", "model_overlap", "popularity_bias",
               "vector_neighbours", "taste_communities", "similar_users", "model_summary", "user_dislikes",
               "hidden_items"}
    assert {q.name for q in Cookbook().list()} == covered | IMPRESSION_QUERIES | GEO_QUERIES
    assert all(any(c in t for t in tested) for c in covered)


def test_cli_runs_a_query_in_every_format(world, neo4j_uri: str) -> None:
    _store, w = world
    user = busiest_user(w)
    args = ["cypher", "user_recommendations", "-p", f"user={user}", "-p", "model=itemcf", "-p", "k=3",
            "--store", neo4j_uri]
    expected = [i for i, _s, _r in w.recs["itemcf"][user][:3]]
    out = CliRunner().invoke(main, [*args, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert [x["item"] for x in json.loads(out.output)] == expected
    out = CliRunner().invoke(main, [*args, "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert [line.split(",")[1] for line in out.output.strip().splitlines()[1:]] == expected
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].split() == ["rank", "item", "title", "score", "at"]
    assert out.output.strip().endswith("(3 rows)")
