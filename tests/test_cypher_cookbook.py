"""The cookbook's files: headers, declared parameters, and labels/types from the schema only.

These run without a server; tests/test_cypher_neo4j.py runs every query on a real Neo4j.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kgrec.graph.cypher import Cookbook, CookbookError, parse_query
from kgrec.graph.schema import Label, Rel

REQUIRED = {
    "graph_summary", "user_history", "also_played", "shared_tags", "friends_like", "tag_neighbourhood",
    "explain_recommendation", "user_recommendations", "model_overlap", "popularity_bias",
    "vector_neighbours", "taste_communities", "user_dislikes", "hidden_items",
}


def _code(text: str) -> str:
    """The query without comments and string literals, where a ':Name' could hide."""
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", text)


def _names_after_colons(code: str) -> list[str]:
    """Every ':Name' written without a space, which is how the cookbook writes labels and types.

    Map literals in the cookbook always put a space after the colon (``{id: $user}``), so any
    other ``:Name`` is a label or a relationship type and must be in the schema.
    """
    names = re.findall(r":([A-Za-z_]\w*)", code)
    for alternatives in re.findall(r"\[\s*\w*\s*:([A-Za-z_|:\s]+)", code):
        names += [a.strip(" :") for a in alternatives.split("|") if a.strip(" :")]
    return names


def test_the_cookbook_has_every_required_query() -> None:
    book = Cookbook()
    assert len(book) >= 12
    assert {q.name for q in book.list()} >= REQUIRED
    for q in book.list():
        assert q.purpose and len(q.purpose.splitlines()) == 1


def test_every_label_and_type_comes_from_the_schema() -> None:
    labels = {lab.value for lab in Label}
    types = {r.value for r in Rel}
    seen: set[str] = set()
    for q in Cookbook().list():
        code = _code(q.text)
        assert "`" not in code, f"{q.name}: backticks could smuggle a label in"
        assert not re.search(r"\b(apoc|gds)\.", code), f"{q.name}: plugins are not part of Community"
        for name in _names_after_colons(code):
            assert name in labels | types, f"{q.name}: {name!r} is not a schema label or type"
            seen.add(name)
    # The parser is not vacuous: the cookbook as a whole names most of the schema.
    assert {"User", "Item", "Tag", "INTERACTED", "HAS_TAG", "FOLLOWS", "TAGGED", "RECOMMENDED"} <= seen


def test_the_label_parser_catches_a_stray_label() -> None:
    code = _code("MATCH (u:User)-[:INTERACTED|LIKES]->(x:Secret) WHERE u.name = ':Fake' RETURN x")
    names = _names_after_colons(code)
    assert {"Secret", "LIKES"} <= set(names)
    assert "Fake" not in names


def test_values_only_travel_as_parameters() -> None:
    for q in Cookbook().list():
        declared = {p.name for p in q.params}
        assert set(re.findall(r"\$(\w+)", q.text)) == declared, q.name
        assert "{" + "}" not in q.text


def test_bind_checks_names_and_types() -> None:
    q = Cookbook().get("also_played")
    assert q.bind({"item": "i1", "min_co": 2, "k": 5}) == {"item": "i1", "min_co": 2, "k": 5}
    with pytest.raises(CookbookError, match="missing parameter"):
        q.bind({"item": "i1", "k": 5})
    with pytest.raises(CookbookError, match="unknown parameter"):
        q.bind({"item": "i1", "min_co": 2, "k": 5, "kk": 1})
    with pytest.raises(CookbookError, match="must be int"):
        q.bind({"item": "i1", "min_co": "2", "k": 5})
    with pytest.raises(CookbookError, match="must be int"):
        q.bind({"item": "i1", "min_co": True, "k": 5})
    with pytest.raises(CookbookError, match="unknown query"):
        Cookbook().get("no_such_query")


def test_malformed_files_are_refused() -> None:
    with pytest.raises(CookbookError, match="lacks '// purpose"):
        parse_query("// name: x\n// params: (none)\nRETURN 1")
    with pytest.raises(CookbookError, match="uses"):
        parse_query("// name: x\n// purpose: p\n// params: a (int)\nRETURN $a + $b")
    with pytest.raises(CookbookError, match="bad parameter"):
        parse_query("// name: x\n// purpose: p\n// params: a (tensor)\nRETURN $a")


def test_the_readme_lists_every_query() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:analysts -->", 1)[1]
    for q in Cookbook().list():
        assert f"| `{q.name}` | {q.signature()} | {q.purpose} |" in section, q.name


#: The impression queries, run on a real Neo4j below (tests/test_cypher_neo4j.py runs the others).
IMPRESSION_QUERIES = {"click_through_by_model", "click_through_by_position", "click_through_by_tag",
                      "shown_not_chosen"}


@pytest.mark.neo4j
def test_impression_queries_on_a_real_neo4j(neo4j_uri: str) -> None:
    """A hand-made log on Neo4j; every impression query's rows equal what plain Python counts."""
    from kgrec.graph.cypher import run
    from kgrec.graph.impressions import Impression, Outcome, as_impression_store
    from kgrec.graph.store_factory import open_store
    from kgrec.loaders.synthetic import generate

    g = generate(users=20, items=30, seed=4)
    tags: dict[str, set[str]] = {}
    for x in g.records.item_tags:
        tags.setdefault(x.item, set()).add(x.tag)
    items = sorted(i.id for i in g.records.items)
    imps, outcomes = [], []
    for n in range(40):  # 40 lists of 3: two policies and models, every 5th first item chosen, every 7th disliked
        user, policy = f"u{n % 6:04d}", "explore" if n % 2 else "learn"
        model = "itemcf" if n % 3 else "graph_walk"
        request = f"req{n:05d}x"
        for p in (1, 2, 3):
            item = items[(n * 3 + p * 7) % len(items)]
            imps.append(Impression(f"{request}:{p}", request, user, item, p, 1000.0 + n, policy, model, model,
                                   1.0 if p == 1 or policy == "learn" else 0.5, 1.0, p == 3 and policy == "explore",
                                   0.1 if policy == "explore" else 0.0, 1.0, 1 if policy == "explore" else 0))
        if n % 5 == 0:
            outcomes.append(Outcome(f"{request}:1", "chosen", 2000.0 + n))
        if n % 7 == 0:
            outcomes.append(Outcome(f"{request}:2", "disliked", 2000.0 + n))
    with open_store(neo4j_uri) as store:
        store.clear()
        try:
            store.load(g.records)
            log = as_impression_store(store)
            log.log_impressions(imps)
            log.record_outcomes(outcomes)
            marked = {o.impression: o.kind for o in outcomes}
            by_model = run(store, "click_through_by_model", {"since": 1010.0})
            kept = [i for i in imps if i.at >= 1010.0]
            expect = {}
            for i in kept:
                e = expect.setdefault((i.policy, i.model), [0, 0, 0, 0])
                e[0] += 1
                e[1] += marked.get(i.id) == "chosen"
                e[2] += marked.get(i.id) == "disliked"
                e[3] += i.explored
            assert [(r["policy"], r["model"]) for r in by_model] == sorted(expect)
            for r in by_model:
                n_, c, d, x = expect[(r["policy"], r["model"])]
                assert (r["impressions"], r["chosen"], r["disliked"]) == (n_, c, d)
                assert r["click_through"] == pytest.approx(c / n_) and r["explored_share"] == pytest.approx(x / n_)
            by_position = run(store, "click_through_by_position", {"policy": "explore"})
            assert [r["position"] for r in by_position] == [1, 2, 3]
            for r in by_position:
                rows = [i for i in imps if i.policy == "explore" and i.position == r["position"]]
                assert r["impressions"] == len(rows)
                assert r["chosen"] == sum(marked.get(i.id) == "chosen" for i in rows)
                assert r["mean_propensity"] == pytest.approx(sum(i.propensity for i in rows) / len(rows))
            by_tag = run(store, "click_through_by_tag", {"min_impressions": 3, "k": 50})
            counts: dict[str, list[int]] = {}
            for i in imps:
                for t in tags.get(i.item, ()):
                    c2 = counts.setdefault(t, [0, 0])
                    c2[0] += 1
                    c2[1] += marked.get(i.id) == "chosen"
            want = sorted(((t, n_, c) for t, (n_, c) in counts.items() if n_ >= 3),
                          key=lambda x: (-x[2] / x[1], -x[1], x[0]))
            assert [(r["tag"], r["impressions"], r["chosen"]) for r in by_tag] == want
            user = "u0000"
            skips = run(store, "shown_not_chosen", {"user": user, "limit": 100})
            per_item: dict[str, list[int]] = {}
            for i in imps:
                if i.user == user:
                    per_item.setdefault(i.item, []).append(i.id in marked)
            assert {r["item"]: r["shown"] for r in skips} == {
                item: len(flags) for item, flags in per_item.items() if not any(flags)}
        finally:
            store.clear()
