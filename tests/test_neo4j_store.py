"""Neo4jStore beyond the shared contract: URLs, credentials, errors, run_read/run_write, batching.

The contract every store meets is ``tests/test_store_contract.py``; these tests cover what
only a Neo4j server has (access modes, authentication, a server that goes away).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgrec.graph import neo4j_store
from kgrec.graph.neo4j_store import Neo4jStore
from kgrec.graph.records import Interaction, Item, User
from kgrec.graph.schema import Label, Rel
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store_errors import StoreError, StoreUnavailable
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "neo4j" / "neo4j-local"
STAMP = ROOT / "deploy" / "neo4j" / "target" / "lib" / ".complete"


@pytest.mark.parametrize(
    "url",
    [
        "neo4j://neo4j:secret@127.0.0.1:7687",  # credentials never in the URL
        "neo4j://127.0.0.1:7687/neo4j/extra",
        "neo4j://127.0.0.1:notaport",
        "neo4j://:7687",
        "neo4j://127.0.0.1:7687/neo4j?password=x",
        "http://127.0.0.1:7474",
    ],
)
def test_bad_urls_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(StoreError) as err:
        Neo4jStore.from_url(url)
    assert not isinstance(err.value, StoreUnavailable)
    assert "secret" not in str(err.value)


def test_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        open_store("bolt://127.0.0.1:1")


@pytest.fixture
def store(neo4j_uri: str) -> Iterator[Neo4jStore]:
    s = Neo4jStore.from_url(neo4j_uri)
    s.clear()
    yield s
    s.clear()
    s.close()


@pytest.mark.neo4j
def test_run_read_returns_plain_data_and_refuses_writes(store: Neo4jStore) -> None:
    store.upsert_users([User("alice", {"age": 31})])
    rows = store.run_read("MATCH (u:User {id: $id}) RETURN u.id AS id, u.attr_age AS age, u AS node", {"id": "alice"})
    assert rows == [{"id": "alice", "age": 31, "node": {"id": "alice", "attr_age": 31}}]
    with pytest.raises(StoreError):
        store.run_read("CREATE (:User {id: $id})", {"id": "mallory"})
    assert store.get_node(Label.USER, "mallory") is None
    assert store.run_write("MERGE (u:User {id: $id}) RETURN u.id AS id", {"id": "bob"}) == [{"id": "bob"}]
    with pytest.raises(StoreError):
        store.run_read("THIS IS NOT CYPHER", {})


@pytest.mark.neo4j
def test_attribute_updates_keep_other_properties(store: Neo4jStore) -> None:
    """Replacing attributes removes stale attr_* keys but keeps title and written-back vectors."""
    store.upsert_items([Item("i1", "Title", {"year": 1999, "country": "UK"})])
    store.run_write("MATCH (i:Item {id: $id}) SET i.emb_test = $vec", {"id": "i1", "vec": [0.5, 0.25]})
    store.upsert_items([Item("i1", "Title", {"year": 2001})])
    assert store.get_node(Label.ITEM, "i1") == {"id": "i1", "title": "Title", "attrs": {"year": 2001}}
    assert store.run_read("MATCH (i:Item {id: 'i1'}) RETURN i.emb_test AS v", {}) == [{"v": [0.5, 0.25]}]


@pytest.mark.neo4j
def test_small_batches_and_clear_loop_cover_everything(store: Neo4jStore, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = generate(users=20, items=15, seed=5)
    store.batch_size = 37  # several transactions per kind, with node MERGEs repeated across batches
    store.load(graph.records)
    assert store.snapshot().fingerprint == build_snapshot(graph.records).fingerprint
    assert store.counts()["interactions"] == len(graph.records.interactions)
    monkeypatch.setattr(neo4j_store, "CLEAR_BATCH", 11)
    store.clear()
    assert set(store.counts().values()) == {0}
    assert store.run_read("MATCH (n) RETURN count(n) AS n", {}) == [{"n": 0}]


@pytest.mark.neo4j
def test_deletes_are_batched_and_count_only_what_existed(store: Neo4jStore) -> None:
    store.batch_size = 3
    store.upsert_interactions([Interaction(f"u{n}", f"i{n % 4}") for n in range(10)])
    assert store.delete_interactions([(f"u{n}", f"i{n % 4}") for n in range(5)] + [("u1", "i1"), ("x", "y")]) == 5
    assert store.delete_users([f"u{n}" for n in range(8)] + ["u0", "nobody"]) == 8
    assert store.counts()["users"] == 2 and store.counts()["interactions"] == 2
    assert store.has_relationship((Label.USER, "u9"), Rel.INTERACTED, (Label.ITEM, "i1"))
    assert not store.has_relationship((Label.ITEM, "i1"), Rel.INTERACTED, (Label.USER, "u9"))


def _local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.neo4j
def test_credentials_from_env_and_a_server_that_goes_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server with auth: credentials come from KGREC_NEO4J_USER/PASSWORD; wrong ones are a
    StoreError (not 'unavailable'); once the server stops, calls raise StoreUnavailable."""
    if not STAMP.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but deploy/neo4j/target/lib is not assembled")
        pytest.skip("deploy/neo4j/target/lib is not assembled (make test does it)")
    directory = str(tmp_path / "auth")
    started = _local("start", "--dir", directory, "--password", "kgrec-test-pw")
    try:
        assert started.returncode == 0, started.stderr
        uri = started.stdout.strip().splitlines()[-1]
        monkeypatch.delenv("KGREC_NEO4J_USER", raising=False)
        monkeypatch.delenv("KGREC_NEO4J_PASSWORD", raising=False)
        with pytest.raises(StoreError) as err:
            Neo4jStore.from_url(uri)  # no credentials
        assert not isinstance(err.value, StoreUnavailable)
        monkeypatch.setenv("KGREC_NEO4J_USER", "neo4j")
        monkeypatch.setenv("KGREC_NEO4J_PASSWORD", "wrong-password")
        with pytest.raises(StoreError) as err:
            Neo4jStore.from_url(uri)
        assert not isinstance(err.value, StoreUnavailable) and "wrong-password" not in str(err.value)
        monkeypatch.setenv("KGREC_NEO4J_PASSWORD", "kgrec-test-pw")
        store = Neo4jStore.from_url(uri + "/neo4j")
        store.upsert_users([User("u")])
        assert store.counts()["users"] == 1
        assert store.ping() is True
        assert _local("stop", "--dir", directory).returncode == 0
        with pytest.raises(StoreUnavailable):
            store.counts()
        with pytest.raises(StoreUnavailable):
            store.upsert_users([User("v")])
        assert store.ping() is False
        store.close()
    finally:
        _local("stop", "--dir", directory)
