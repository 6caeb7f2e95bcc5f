"""The bulk path end to end: ``kgrec export --format neo4j-csv`` from a MemoryStore, then
``deploy/neo4j/neo4j-local import`` (neo4j-admin database import full) into a stopped instance
of its own, started afterwards: the server holds the MemoryStore's graph (counts, fingerprint,
nodes with their value types) and kgrec's constraints once a store has opened it.

One instance, one import, one start: a JVM start takes tens of seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.graph.memory import MemoryStore
from kgrec.graph.neo4j_cypher import CONSTRAINTS
from kgrec.graph.schema import Label
from tests.test_neo4j_csv import awkward, typed

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "neo4j" / "neo4j-local"
STAMP = ROOT / "deploy" / "neo4j" / "target" / "lib" / ".complete"

pytestmark = pytest.mark.neo4j


def local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_export_import_start_gives_the_same_graph(tmp_path: Path) -> None:
    from kgrec.cli import main
    from kgrec.graph.neo4j_store import Neo4jStore

    if not STAMP.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but deploy/neo4j/target/lib is not assembled")
        pytest.skip("deploy/neo4j/target/lib is not assembled (make test does it)")
    with MemoryStore(tmp_path / "graph") as memory:
        memory.load(awkward())
    exported = CliRunner().invoke(
        main, ["export", "--store", f"memory://{tmp_path / 'graph'}", "--format", "neo4j-csv", str(tmp_path / "csv")]
    )
    assert exported.exit_code == 0, exported.output
    instance = str(tmp_path / "neo4j")
    try:
        imported = local("import", "--dir", instance, "--from", str(tmp_path / "csv"), "--threads", "2")
        assert imported.returncode == 0, imported.stderr
        assert "relationships/s" in imported.stderr
        started = local("start", "--dir", instance)
        assert started.returncode == 0, started.stderr
        uri = started.stdout.strip().splitlines()[-1]

        busy = local("import", "--dir", instance, "--from", str(tmp_path / "csv"), "--overwrite")
        assert busy.returncode == 1 and "stop it first" in busy.stderr

        memory = MemoryStore(tmp_path / "graph")
        # What the export carried: export() names a tag that only taggings named after its id.
        exported_graph = MemoryStore(tmp_path / "exported")
        exported_graph.load(memory.export())
        with Neo4jStore.from_url(uri) as neo:
            assert neo.counts() == memory.counts()
            assert neo.snapshot().fingerprint == memory.snapshot().fingerprint
            state = neo.feedback("alice")
            assert state.hidden == memory.feedback("alice").hidden and state.hidden_token  # a new hidden_rev
            memory = exported_graph
            for label, key in memory.graph.nodes:
                got, want = neo.get_node(label, key), memory.get_node(label, key)
                assert got == want, (label, key)
                assert {k: type(v) for k, v in (got or {}).get("attrs", {}).items()} == {
                    k: type(v) for k, v in (want or {}).get("attrs", {}).items()}, (label, key)
                if label is Label.USER:
                    assert typed(neo.neighbors(label, key)) == typed(memory.neighbors(label, key))
            constraints = neo.run_read("SHOW CONSTRAINTS YIELD name, type RETURN name, type ORDER BY name", {})
            declared = sorted(c.split()[2] for c in CONSTRAINTS if c.startswith("CREATE CONSTRAINT"))
            assert "kgrec_attribute_id" in declared and "kgrec_user_id" in declared
            assert constraints == [{"name": name, "type": "UNIQUENESS"} for name in declared]
            points = neo.run_read("SHOW INDEXES YIELD name, type WHERE type = 'POINT' RETURN name", {})
            assert points == [{"name": "kgrec_item_location"}]  # analysts' point.distance on Item.location
        assert local("stop", "--dir", instance).returncode == 0
        again = local("import", "--dir", instance, "--from", str(tmp_path / "csv"))
        assert again.returncode == 1 and "--overwrite" in again.stderr
        (tmp_path / "csv" / "manifest.json").write_text('{"format": "something else"}')
        foreign = local("import", "--dir", instance, "--from", str(tmp_path / "csv"), "--overwrite")
        assert foreign.returncode == 1 and "manifest" in foreign.stderr
    finally:
        local("stop", "--dir", instance)
