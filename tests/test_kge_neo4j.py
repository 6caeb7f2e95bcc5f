"""KGE vectors written into a real Neo4j: the vector index finds the same neighbours as numpy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kgrec.embeddings.pykeen_setup import TrainConfig
from kgrec.embeddings.train import train
from kgrec.embeddings.vector_writeback import (
    DROP_INDEX,
    INDEX_NAME,
    PROPERTY,
    QUERY_NEIGHBOURS,
    numpy_neighbours,
    write_embeddings,
)
from kgrec.graph.schema import Label
from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders.synthetic import generate
from tests.neo4j_fixtures import loaded_neo4j

pytestmark = pytest.mark.neo4j

READ_VECTOR = "MATCH (n:Item {id: $id}) RETURN n.emb_kge AS v"
COUNT_VECTORS = "MATCH (n:User) WHERE n.emb_kge IS NOT NULL RETURN count(n) AS n"
INDEX_INFO = "SHOW VECTOR INDEXES YIELD name, labelsOrTypes, properties RETURN name, labelsOrTypes, properties"


@pytest.fixture(scope="module")
def graph():
    return generate(users=30, items=40, seed=5, per_user=8, future_per_user=3)


@pytest.fixture(scope="module")
def artifacts(graph):
    snap = build_snapshot(graph.records)
    common = {"epochs": 2, "progress": False, "test_fraction": 0.0, "validation_fraction": 0.0,
              "training_loop": "slcwa", "loss": None}
    return (train(snap, TrainConfig(model="RotatE", dim=8, **common)),
            train(snap, TrainConfig(model="DistMult", dim=12, **common)))


@pytest.fixture
def store(neo4j_uri: str, graph) -> Iterator[object]:
    with loaded_neo4j(neo4j_uri, graph.records) as s:
        yield s
        for query in DROP_INDEX.values():
            s.run_write(query, {})


def _index_neighbours(store, artifact, key: str, k: int) -> list[tuple[str, float]]:
    vector = store.run_read(READ_VECTOR, {"id": key})[0]["v"]
    rows = store.run_read(QUERY_NEIGHBOURS, {"index": INDEX_NAME[Label.ITEM], "k": k, "vector": vector})
    return [(r["id"], r["score"]) for r in rows]


def test_vector_index_neighbours_equal_numpy_cosine(store, artifacts, graph) -> None:
    rotate, distmult = artifacts
    result = write_embeddings(store, rotate, batch_size=7)
    assert result.written == {"User": 30, "Item": 40, "Tag": len(graph.records.tags)}
    assert sum(result.skipped.values()) == 0
    assert result.dimensions == 16  # complex vectors as [real | imag]
    info = {r["name"]: r for r in store.run_read(INDEX_INFO, {})}
    assert info[INDEX_NAME[Label.ITEM]]["labelsOrTypes"] == ["Item"]
    assert info[INDEX_NAME[Label.ITEM]]["properties"] == [PROPERTY]
    for key in [i.id for i in graph.records.items[:5]]:
        got = _index_neighbours(store, rotate, key, 6)
        want = numpy_neighbours(rotate, Label.ITEM, key, 6)
        assert [g[0] for g in got] == [w[0] for w in want]
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=1e-5)

    # A second model of another dimension replaces the vectors and the index.
    again = write_embeddings(store, distmult)
    assert again.dimensions == 12
    assert store.run_read(COUNT_VECTORS, {})[0]["n"] == 30
    key = graph.records.items[7].id
    assert [g[0] for g in _index_neighbours(store, distmult, key, 5)] == [
        w[0] for w in numpy_neighbours(distmult, Label.ITEM, key, 5)
    ]


def test_write_refuses_a_bad_batch_size(store, artifacts) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        write_embeddings(store, artifacts[0], batch_size=0)
