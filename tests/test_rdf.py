"""RDF export/import: lossless round trips, third-party facts about items, and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rdflib import Graph

from kgrec.cli import main
from kgrec.graph.memory import MemoryStore
from kgrec.graph.rdf_export import export_rdf
from kgrec.graph.rdf_import import import_rdf
from kgrec.graph.rdf_terms import KG, node_iri
from kgrec.graph.records import Attribute, Dislike, Fact, GraphRecords, Interaction, Item, User, UserAttribute
from kgrec.graph.schema import Label, Rel
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store_errors import StoreError
from kgrec.loaders.synthetic import generate

CYPHERISH = "') DETACH DELETE n; MATCH (m) RETURN ('"


@pytest.fixture(scope="module")
def records() -> GraphRecords:
    """A small synthetic graph plus awkward ids, attribute types, exact floats and facts."""
    r = generate(users=30, items=50, seed=3).records
    r.users += [User("Björk", {"age": 57, "vip": True, "score": 1 / 3, "city": "Reykjavík"}), User(CYPHERISH)]
    r.items += [Item("東京事変", "東京事変 🎸", {"year": 2004}, (35.6895, 139.69171)), Item("a%2Fb c?d#e", None),
                Item("south-west", None, {}, (-89.999999999999, -180.0))]
    r.attributes += [Attribute("age:55+", "age", "55+", "age 55+"), Attribute("city:Reykjavík", "city", "Reykjavík"),
                     Attribute("odd key:/?#", None, None, None)]
    r.has_attribute += [UserAttribute("Björk", "age:55+"), UserAttribute("Björk", "city:Reykjavík"),
                        UserAttribute(CYPHERISH, "odd key:/?#")]
    r.interactions += [
        Interaction("Björk", "東京事変", 0.1 + 0.2, 4.5, 1_234_567_890),
        Interaction(CYPHERISH, "a%2Fb c?d#e", 123456789.123456789),
    ]
    r.facts += [
        Fact("東京事変", "http://dbpedia.org/ontology/genre", "http://dbpedia.org/resource/J-pop", "J-pop"),
        Fact("東京事変", "plain predicate", "not an IRI", None),
    ]
    r.dislikes += [Dislike("Björk", "a%2Fb c?d#e", 1_234_567_999), Dislike(CYPHERISH, "東京事変")]
    r.hidden += ["東京事変"]
    return r


@pytest.fixture
def store(tmp_path: Path, records: GraphRecords) -> MemoryStore:
    s = MemoryStore(tmp_path / "source")
    s.load(records)
    return s


@pytest.mark.parametrize("fmt", ["ttl", "nt"])
def test_export_then_import_gives_an_equal_graph(store: MemoryStore, records: GraphRecords, tmp_path: Path,
                                                 fmt: str) -> None:
    path = tmp_path / f"graph.{fmt}"
    n = export_rdf(store, path, fmt, chunk=997)  # several chunks, each serialized on its own
    assert n == len(Graph().parse(path, format="turtle" if fmt == "ttl" else "nt"))
    target = MemoryStore(tmp_path / "target")
    result = import_rdf(target, path)
    assert sum(result.unmapped.values()) == 0, result.examples
    assert target.counts() == store.counts()
    assert target.snapshot().fingerprint == store.snapshot().fingerprint == build_snapshot(records).fingerprint
    assert target.get_node(Label.USER, "Björk") == {
        "id": "Björk", "attrs": {"age": 57, "vip": True, "score": 1 / 3, "city": "Reykjavík"},
    }
    assert target.get_node(Label.ITEM, "a%2Fb c?d#e") == {"id": "a%2Fb c?d#e", "attrs": {}}
    assert target.get_node(Label.ITEM, "東京事変")["hidden"] is True
    assert target.has_relationship((Label.USER, "Björk"), Rel.DISLIKED, (Label.ITEM, "a%2Fb c?d#e"))
    assert target.counts()["dislikes"] == 2
    assert target.get_node(Label.ITEM, "東京事変")["location"] == (35.6895, 139.69171)
    assert target.get_node(Label.ITEM, "south-west")["location"] == (-89.999999999999, -180.0)
    assert target.feedback("Björk").attributes == {"age:55+", "city:Reykjavík"}
    assert target.get_node(Label.ATTRIBUTE, "odd key:/?#") == {"id": "odd key:/?#", "kind": "odd key",
                                                               "value": "/?#", "name": "odd key /?#"}
    weight = target.neighbors(Label.USER, CYPHERISH, [Rel.INTERACTED])[0].props["weight"]
    assert weight == 123456789.123456789
    # Importing the same file again changes nothing.
    import_rdf(target, path)
    assert target.snapshot().fingerprint == store.snapshot().fingerprint


def test_export_uses_the_kgrec_vocabulary(store: MemoryStore) -> None:
    buf = io.BytesIO()
    export_rdf(store, buf, "nt")
    g = Graph().parse(data=buf.getvalue().decode("utf-8"), format="nt")
    user = node_iri(Label.USER, "Björk")
    assert str(user) == "https://kgrec.dev/id/user/Bj%C3%B6rk"
    assert (user, None, KG.User) in g
    assert len(list(g.subjects(None, KG.Interaction))) == store.counts()["interactions"]
    assert len(list(g.subjects(None, KG.Follow))) == store.counts()["follows"]


THIRD_PARTY = """
@prefix dbo: <http://dbpedia.org/ontology/> .
@prefix dbr: <http://dbpedia.org/resource/> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .

<https://kgrec.dev/id/item/blur> dbo:genre dbr:Britpop ;
    rdfs:comment "a literal is not an entity" .
<http://music.example/artist/radiohead> dbo:hometown dbr:Abingdon .
<http://music.example/artist/nobody> dbo:genre dbr:Britpop .
dbr:Muse_band owl:sameAs <https://kgrec.dev/id/item/muse> ;
    dbo:genre dbr:Alternative_rock .
dbr:Britpop rdfs:label "Britpop (de)"@de, "Britpop"@en .
dbr:Abingdon rdfs:label "Abingdon" .
dbr:Blur dbo:abstract "Blur are an English rock band." .
dbr:Nowhere rdfs:label "Nowhere" .
<https://kgrec.dev/id/item/missing> dbo:genre dbr:Britpop .
"""


def test_third_party_triples_about_items_become_related_facts(tmp_path: Path) -> None:
    target = MemoryStore(tmp_path / "g")
    target.upsert_items([Item("blur", "Blur"), Item("radiohead", "Radiohead"), Item("muse", "Muse")])
    path = tmp_path / "facts.ttl"
    path.write_text(THIRD_PARTY, encoding="utf-8")
    result = import_rdf(target, path, item_prefixes=["http://music.example/artist/"])
    dbr = "http://dbpedia.org/resource/"
    assert target.has_relationship((Label.ITEM, "blur"), Rel.RELATED, (Label.ENTITY, dbr + "Britpop"))
    assert target.has_relationship((Label.ITEM, "radiohead"), Rel.RELATED, (Label.ENTITY, dbr + "Abingdon"))
    assert target.has_relationship((Label.ITEM, "muse"), Rel.RELATED, (Label.ENTITY, dbr + "Alternative_rock"))
    assert target.get_node(Label.ENTITY, dbr + "Britpop") == {"iri": dbr + "Britpop", "label": "Britpop"}
    assert target.get_node(Label.ENTITY, dbr + "Abingdon")["label"] == "Abingdon"
    [genre] = target.neighbors(Label.ITEM, "blur", [Rel.RELATED])
    assert genre.props == {"predicate": "http://dbpedia.org/ontology/genre"}
    assert target.counts()["facts"] == 3
    assert target.counts()["items"] == 3  # unknown items are reported, never created
    assert result.unmapped == {
        "object is a literal or blank node, not an entity IRI": 1,
        "subject is not a known item": 3,
        "rdfs:label of a node that is not the entity of a fact": 1,
    }
    assert any("nobody" in e for e in result.examples["subject is not a known item"])


BAD_VALUES = """
@prefix kg: <https://kgrec.dev/ns#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix u: <https://kgrec.dev/id/user/> .
@prefix i: <https://kgrec.dev/id/item/> .

<https://kgrec.dev/id/interaction/a/x> a kg:Interaction ; kg:user u:a ; kg:item i:x ; kg:weight 2.5 ; kg:ts 17 .
<https://kgrec.dev/id/interaction/a/y> a kg:Interaction ; kg:user u:a ; kg:item i:y ; kg:weight "heavy" .
<https://kgrec.dev/id/interaction/b/x> a kg:Interaction ; kg:user u:b ; kg:item i:x ; kg:weight -1 .
<https://kgrec.dev/id/interaction/b/y> a kg:Interaction ; kg:user u:b ; kg:item i:y ; kg:ts "soon"^^xsd:integer .
<https://kgrec.dev/id/interaction/c/x> a kg:Interaction ; kg:item i:x .
<https://kgrec.dev/id/follow/a/b> a kg:Follow ; kg:user u:a ; kg:friend u:b ; kg:weight 0.5 .
<https://kgrec.dev/id/thing/z> a kg:Gadget ; kg:weight 3 .
u:a a kg:User ; kg:id "a" ; kg:attribute <https://kgrec.dev/id/user/a/attr/born> .
<https://kgrec.dev/id/user/a/attr/born> kg:key "born" ; kg:value "1990-05-01"^^xsd:date .
"""


def test_import_reports_unusable_values_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "bad-values.ttl"
    path.write_text(BAD_VALUES, encoding="utf-8")
    target = MemoryStore(tmp_path / "g")
    result = import_rdf(target, path)
    assert result.counts["interactions"] == 1 and result.counts["follows"] == 1
    assert target.counts()["interactions"] == 1
    assert target.neighbors(Label.USER, "a", [Rel.INTERACTED])[0].props == {"weight": 2.5, "ts": 17}
    assert target.get_node(Label.USER, "a") == {"id": "a", "attrs": {"born": "1990-05-01"}}
    target.close()  # persists: every value is plain JSON
    assert result.unmapped == {
        "kg:weight is not a positive number": 2,
        "kg:ts is not an integer": 1,
        "kg:Interaction without kg:user and kg:item": 1,
        "kgrec vocabulary on a node that is not a declared kgrec node": 2,
    }


BAD_PLACES = """
@prefix kg: <https://kgrec.dev/ns#> .
@prefix geo: <http://www.w3.org/2003/01/geo/wgs84_pos#> .
@prefix i: <https://kgrec.dev/id/item/> .
@prefix u: <https://kgrec.dev/id/user/> .
@prefix a: <https://kgrec.dev/id/attribute/> .

i:good a kg:Item ; kg:id "good" ; geo:lat 52.5 ; geo:long "13.4"^^<http://www.w3.org/2001/XMLSchema#double> .
i:half a kg:Item ; kg:id "half" ; geo:lat 52.5 .
i:far a kg:Item ; kg:id "far" ; geo:lat 95.0 ; geo:long 13.4 .
i:word a kg:Item ; kg:id "word" ; geo:lat "north" ; geo:long 13.4 .
<http://example.org/elsewhere> geo:lat 1.0 .
u:x a kg:User ; kg:id "x" ; kg:hasAttribute a:team%3Ared, "not a node" .
"""


def test_import_reports_unusable_locations_and_attribute_links(tmp_path: Path) -> None:
    path = tmp_path / "bad-places.ttl"
    path.write_text(BAD_PLACES, encoding="utf-8")
    target = MemoryStore(tmp_path / "g")
    result = import_rdf(target, path)
    assert target.get_node(Label.ITEM, "good")["location"] == (52.5, 13.4)
    assert all("location" not in target.get_node(Label.ITEM, k) for k in ("half", "far", "word"))
    assert target.counts()["items"] == 4
    assert target.feedback("x").attributes == {"team:red"}
    assert result.unmapped == {
        "item location needs both geo:lat and geo:long": 1,
        "item location lat 95.0 is outside -90..90 degrees": 1,
        "item location lat 'north' is not a finite number of degrees": 1,
        "subject is not a known item": 1,
        "kg:hasAttribute of something that is not a kgrec attribute": 1,
    }


def test_import_refuses_malformed_rdf(tmp_path: Path) -> None:
    path = tmp_path / "bad.ttl"
    path.write_text("<http://a> <http://b> .\n", encoding="utf-8")
    target = MemoryStore(tmp_path / "g")
    with pytest.raises(StoreError, match="not valid"):
        import_rdf(target, path)
    with pytest.raises(StoreError, match="format"):
        import_rdf(target, tmp_path / "data.unknown-extension")
    assert target.counts()["items"] == 0


def _stats(url: str) -> dict[str, int]:
    result = CliRunner().invoke(main, ["stats", "--json", "--store", url])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_export_and_import(store: MemoryStore, tmp_path: Path) -> None:
    store.close()
    runner = CliRunner()
    source, target = f"memory://{tmp_path / 'source'}", f"memory://{tmp_path / 'copy'}"
    out = tmp_path / "g.nt"
    result = runner.invoke(main, ["export", "--store", source, "--format", "nt", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported" in result.stderr
    result = runner.invoke(main, ["import", str(out), "--store", target])
    assert result.exit_code == 0, result.output
    assert "unmapped" not in result.output
    assert _stats(target) == _stats(source)
    copied, original = MemoryStore(tmp_path / "copy"), MemoryStore(tmp_path / "source")
    assert copied.snapshot().fingerprint == original.snapshot().fingerprint

    stdout = runner.invoke(main, ["export", "--store", source, "--no-progress"])
    assert stdout.exit_code == 0
    assert (node_iri(Label.USER, "Björk"), None, KG.User) in Graph().parse(data=stdout.stdout, format="turtle")


def test_cli_import_reports_unmapped_triples(tmp_path: Path) -> None:
    path = tmp_path / "facts.ttl"
    path.write_text(THIRD_PARTY, encoding="utf-8")
    url = f"memory://{tmp_path / 'g'}"
    with MemoryStore(tmp_path / "g") as s:
        s.upsert_items([Item("blur"), Item("radiohead"), Item("muse")])
    result = CliRunner().invoke(main, ["import", str(path), "--store", url, "--item-prefix",
                                       "http://music.example/artist/"])
    assert result.exit_code == 0, result.output
    assert "facts 3" in result.output
    assert "unmapped 5 triples" in result.output
    assert "subject is not a known item" in result.output


@pytest.mark.parametrize(
    "args",
    [["export", "--format", "xml"], ["import", "does-not-exist.ttl"], ["import", "x.ttl", "--format", "csv"]],
)
def test_cli_bad_arguments_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--store", f"memory://{tmp_path}"])
    assert result.exit_code == 2
    assert "Error:" in result.output


def test_cli_import_of_malformed_file_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "bad.nt"
    path.write_text("this is not n-triples\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path), "--store", f"memory://{tmp_path / 'g'}"])
    assert result.exit_code == 1
    assert "not valid" in result.output
    assert "Traceback" not in result.output


@pytest.mark.neo4j
def test_import_into_neo4j_gives_the_same_graph(
    request: pytest.FixtureRequest, store: MemoryStore, tmp_path: Path
) -> None:
    uri = request.getfixturevalue("neo4j_uri")
    neo4j_store = pytest.importorskip("kgrec.graph.neo4j_store")
    path = tmp_path / "graph.ttl"
    export_rdf(store, path, "ttl")
    with neo4j_store.Neo4jStore.from_url(uri) as neo:
        neo.clear()
        try:
            result = import_rdf(neo, path)
            assert sum(result.unmapped.values()) == 0
            assert neo.counts() == store.counts()
            assert neo.snapshot().fingerprint == store.snapshot().fingerprint
            back = tmp_path / "back.nt"
            export_rdf(neo, back, "nt")
            again = MemoryStore(tmp_path / "again")
            import_rdf(again, back)
            assert again.snapshot().fingerprint == store.snapshot().fingerprint
        finally:
            neo.clear()
