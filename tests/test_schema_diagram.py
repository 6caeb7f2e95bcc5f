"""The schema diagram is generated from graph/schema.py and shows all of it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.diagram import render_svg
from kgrec.graph.schema import PROPERTIES, Label, Rel

SVG = "{http://www.w3.org/2000/svg}"


def test_the_diagram_has_every_label_and_type() -> None:
    root = ET.fromstring(render_svg())
    nodes = {g.get("data-label") for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    rels = {t.get("data-type") for t in root.iter(f"{SVG}text") if t.get("class") == "rel"}
    assert nodes == {lab.value for lab in Label}
    assert rels == {r.value for r in Rel}
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for props in PROPERTIES.values():
        for p in props:
            assert p in text


def test_the_committed_diagram_is_current() -> None:
    committed = Path(__file__).resolve().parent.parent / "docs" / "schema.svg"
    assert committed.read_text(encoding="utf-8") == render_svg(), "regenerate: kgrec schema --svg docs/schema.svg"


def test_kgrec_schema_prints_and_draws(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["schema"])
    assert out.exit_code == 0, out.output
    assert "(:User)-[:FOLLOWS {weight}]->(:User)" in out.output
    path = tmp_path / "s.svg"
    out = runner.invoke(main, ["schema", "--svg", str(path)])
    assert out.exit_code == 0, out.output
    assert path.read_text(encoding="utf-8") == render_svg()
