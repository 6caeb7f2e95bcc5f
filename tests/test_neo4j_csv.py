"""``kgrec export --format neo4j-csv``: neo4j-admin import files that hold exactly the graph.

The files are read back here with the csv module, following nothing but their headers
(``name:type``, ``:ID(group)``, ``:LABEL``, ``:START_ID``/``:END_ID``, ``:TYPE``), and rebuilt
into records: they must give the graph (fingerprint, nodes with their value types) that the
per-call upserts of the same records give. The import into a real server is
``tests/test_neo4j_import.py``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kgrec.graph import records as rec
from kgrec.graph.bulk import REL_TABLES
from kgrec.graph.memory import MemoryStore
from kgrec.graph.neo4j_csv import MANIFEST, export_neo4j_csv
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import ATTR_PREFIX, KEY, Label
from kgrec.graph.store_errors import StoreError
from tests.test_store_load_modes import tricky, upserted


def point(text: str) -> tuple[float, float]:
    """neo4j-admin's ``{latitude:…, longitude:…}`` as (lat, lon)."""
    fields = dict(part.split(":") for part in text.strip("{}").replace(" ", "").split(","))
    return (float(fields["latitude"]), float(fields["longitude"]))


PARSE = {"string": str, "long": int, "double": float, "boolean": lambda v: {"true": True, "false": False}[v],
         "point{crs:WGS-84}": point}
#: The record kinds that are relationships (what the manifest counts as relationships).
RELATIONSHIPS = [t.kind for t in REL_TABLES]


def awkward() -> GraphRecords:
    """tricky() plus values a CSV writer can get wrong."""
    g = tricky()
    g.items += [
        rec.Item('quote "and", comma', 'Title with "quotes", commas, \\n as text', {"note": "", "ratio": 1e-300}),
        rec.Item("東京事変", "🎸 «live»", {"big": 2**62, "neg": -7, "flag": True}),
    ]
    g.users += [rec.User("age-is-text", {"age": "thirty"})]  # the same attribute with another type
    g.interactions += [rec.Interaction("age-is-text", 'quote "and", comma', 1e-9, -0.5, 0)]
    return g


def read_back(folder: Path) -> GraphRecords:
    """Rebuild records from the files, reading only their headers and rows."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    nodes: dict[str, dict[str, dict[str, Any]]] = {label.value: {} for label in Label}
    rels: list[tuple[str, str, str, dict[str, Any]]] = []
    for name in manifest["nodes"] + manifest["relationships"]:
        with open(folder / name, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        for row in rows[1:]:
            props, ends, kind = {}, {}, None
            for column, value in zip(header, row, strict=True):
                prop, _, typ = column.partition(":")
                if typ.startswith(("ID(", "START_ID(", "END_ID(")):
                    ends[typ.split("(")[0]] = value
                    if prop:
                        props[prop] = value
                elif typ in ("LABEL", "TYPE"):
                    kind = value
                else:
                    props[prop] = PARSE[typ](value)
            if "ID" in ends:
                nodes[kind][ends["ID"]] = props
            else:
                rels.append((kind, ends["START_ID"], ends["END_ID"], props))

    def attrs(p: dict[str, Any]) -> dict[str, Any]:
        return {k[len(ATTR_PREFIX):]: v for k, v in p.items() if k.startswith(ATTR_PREFIX)}

    out = GraphRecords(
        users=[rec.User(k, attrs(p)) for k, p in nodes["User"].items()],
        items=[rec.Item(k, p.get("title"), attrs(p), p.get("location")) for k, p in nodes["Item"].items()],
        tags=[rec.Tag(k, p.get("name"), p.get("kind")) for k, p in nodes["Tag"].items()],
        attributes=[rec.Attribute(k, p.get("kind"), p.get("value"), p.get("name"))
                    for k, p in nodes["Attribute"].items()],
        hidden=[k for k, p in nodes["Item"].items() if p.get("hidden") is True],
    )
    entity_labels = {k: p.get("label") for k, p in nodes["Entity"].items()}
    for kind, start, end, p in rels:
        if kind == "INTERACTED":
            out.interactions.append(rec.Interaction(start, end, p["weight"], p.get("rating"), p.get("ts")))
        elif kind == "TAGGED":
            out.taggings.append(rec.Tagging(start, end, p["tag"], p.get("ts")))
        elif kind == "HAS_TAG":
            out.item_tags.append(rec.ItemTag(start, end, p["count"]))
        elif kind == "FOLLOWS":
            out.follows.append(rec.Follow(start, end, p["weight"]))
        elif kind == "RELATED":
            out.facts.append(rec.Fact(start, p["predicate"], end, entity_labels.pop(end, None)))
        elif kind == "DISLIKED":
            out.dislikes.append(rec.Dislike(start, end, p.get("ts")))
        elif kind == "HAS_ATTRIBUTE":
            out.has_attribute.append(rec.UserAttribute(start, end))
    assert not [k for k, label in entity_labels.items() if label], "an entity label no fact carries"
    return out


def typed(neighbors: list[Any]) -> list[tuple[Any, ...]]:
    """Neighbours with the type of every relationship property (2 == 2.0, but not here)."""
    return [(n.rel, n.outgoing, n.id, sorted((k, type(v).__name__, v) for k, v in n.props.items())) for n in neighbors]


def test_files_hold_the_same_graph_with_the_same_types(tmp_path: Path) -> None:
    records = awkward()
    manifest = export_neo4j_csv(records, tmp_path / "export")
    ref = upserted(records, tmp_path)
    back = MemoryStore(tmp_path / "back")
    back.load(read_back(tmp_path / "export"))
    assert back.counts() == ref.counts()
    assert back.snapshot().fingerprint == ref.snapshot().fingerprint
    for label in (Label.USER, Label.ITEM, Label.TAG, Label.ENTITY, Label.ATTRIBUTE):
        for key in (n[1] for n in ref.graph.nodes if n[0] is label):
            got, want = back.get_node(label, key), ref.get_node(label, key)
            assert got == want and {k: type(v) for k, v in (got or {}).get("attrs", {}).items()} == {
                k: type(v) for k, v in (want or {}).get("attrs", {}).items()}, (label, key)
    for user in (n[1] for n in ref.graph.nodes if n[0] is Label.USER):
        assert typed(back.neighbors(Label.USER, user)) == typed(ref.neighbors(Label.USER, user)), user
    assert manifest["multiline"] is False  # stored text has no line breaks (graph.values refuses them)
    assert manifest["counts"]["relationships"] == sum(ref.counts()[k] for k in RELATIONSHIPS)
    assert ref.counts()["has_attribute"] and ref.get_node(Label.ITEM, "placed")["location"] == (-33.5, 151.0)
    assert manifest["counts"]["nodes"] == len(back.graph.nodes)


def test_headers_name_id_groups_labels_types_and_typed_columns(tmp_path: Path) -> None:
    export_neo4j_csv(tricky(), tmp_path / "export")
    manifest = json.loads((tmp_path / "export" / MANIFEST).read_text())
    headers = {name: (tmp_path / "export" / name).read_text().splitlines()[0] for name in
               manifest["nodes"] + manifest["relationships"]}
    assert manifest["multiline"] is False
    assert "id:ID(User),:LABEL,attr_age:double,attr_city:string" in headers.values()
    assert "iri:ID(Entity),:LABEL,label:string" in headers.values()
    assert ":START_ID(User),:END_ID(Item),:TYPE,rating:double,ts:long,weight:double" in headers.values()
    assert ":START_ID(User),:END_ID(Item),:TYPE,weight:long" in headers.values()  # an int weight stays an int
    assert ":START_ID(Item),:END_ID(Entity),:TYPE,predicate:string" in headers.values()
    assert ":START_ID(User),:END_ID(Attribute),:TYPE" in headers.values()
    assert "id:ID(Attribute),:LABEL,kind:string,name:string,value:string" in headers.values()
    assert "id:ID(Item),:LABEL,location:point{crs:WGS-84},title:string" in headers.values()
    for name, header in headers.items():
        label = name.split("-")[1]
        if name.startswith("nodes-"):
            assert header.startswith(f"{KEY[Label(label)]}:ID({label}),:LABEL")


def test_a_folder_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not an empty folder"):
        export_neo4j_csv(tricky(), busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    bad = tricky()
    bad.items.append(rec.Item("surrogate", "\ud800"))
    with pytest.raises(StoreError):
        export_neo4j_csv(bad, tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no folder, no temporary leftovers
    export_neo4j_csv(tricky(), tmp_path / "empty-is-fine")
    assert (tmp_path / "empty-is-fine" / MANIFEST).is_file()


def test_kgrec_export_neo4j_csv_from_a_store(tmp_path: Path) -> None:
    from kgrec.cli import main

    url = f"memory://{tmp_path / 'graph'}"
    with MemoryStore(tmp_path / "graph") as store:
        store.load(tricky())
    runner = CliRunner()
    out = runner.invoke(main, ["export", "--store", url, "--format", "neo4j-csv", str(tmp_path / "csv")])
    assert out.exit_code == 0, out.output
    ref = upserted(tricky(), tmp_path / "ref")
    rels = sum(ref.counts()[k] for k in RELATIONSHIPS)
    assert f"exported {len(ref.graph.nodes)} nodes and {rels} relationships" in out.output
    assert "neo4j-local import --dir DIR --from" in out.output
    back = MemoryStore(tmp_path / "back")
    back.load(read_back(tmp_path / "csv"))
    assert back.snapshot().fingerprint == MemoryStore(tmp_path / "graph").snapshot().fingerprint
    missing = runner.invoke(main, ["export", "--store", url, "--format", "neo4j-csv"])
    assert missing.exit_code == 2 and "give DEST" in missing.output
    twice = runner.invoke(main, ["export", str(tmp_path / "a.ttl"), "-o", str(tmp_path / "b.ttl"), "--store", url])
    assert twice.exit_code == 2 and "not both" in twice.output
    again = runner.invoke(main, ["export", "--store", url, "--format", "neo4j-csv", str(tmp_path / "csv")])
    assert again.exit_code == 1 and "not an empty folder" in again.output
