"""Write trained embeddings into Neo4j as node properties, with a vector index per label.

Analysts then ask for neighbours in Cypher::

    MATCH (i:Item {id: $id})
    CALL db.index.vector.queryNodes('kge_item_embedding', 10, i.emb_kge) YIELD node, score
    RETURN node.title, score

The property is ``emb_kge`` (``graph.schema.EMBEDDING_PREFIX`` + the recommender name), so
it is one constant whichever PyKEEN model produced it; the model, dimension and snapshot
fingerprint are reported by ``write_embeddings``; each node also gets ``emb_kge_model``. Complex vectors
(ComplEx, RotatE) are written as [real | imaginary], the space whose cosine
``KGE.similar_items`` uses, so the index returns the same neighbours as numpy.
Every query is a constant; values travel as parameters; writes are ``UNWIND`` batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.graph.schema import EMBEDDING_PREFIX, Label

#: The recommender whose vectors are written; part of the property and index names.
MODEL = "kge"
PROPERTY = EMBEDDING_PREFIX + MODEL
MODEL_PROPERTY = PROPERTY + "_model"

#: Entity-label prefix (embeddings.triples) of each node label.
PREFIX: dict[Label, str] = {Label.USER: "user:", Label.ITEM: "item:", Label.TAG: "tag:", Label.ENTITY: "entity:"}

INDEX_NAME: dict[Label, str] = {
    Label.USER: "kge_user_embedding",
    Label.ITEM: "kge_item_embedding",
    Label.TAG: "kge_tag_embedding",
    Label.ENTITY: "kge_entity_embedding",
}

SET_VECTORS: dict[Label, str] = {
    Label.USER: "UNWIND $rows AS row MATCH (n:User {id: row.key}) "
    "SET n.emb_kge = row.vector, n.emb_kge_model = $model RETURN count(n) AS written",
    Label.ITEM: "UNWIND $rows AS row MATCH (n:Item {id: row.key}) "
    "SET n.emb_kge = row.vector, n.emb_kge_model = $model RETURN count(n) AS written",
    Label.TAG: "UNWIND $rows AS row MATCH (n:Tag {id: row.key}) "
    "SET n.emb_kge = row.vector, n.emb_kge_model = $model RETURN count(n) AS written",
    Label.ENTITY: "UNWIND $rows AS row MATCH (n:Entity {iri: row.key}) "
    "SET n.emb_kge = row.vector, n.emb_kge_model = $model RETURN count(n) AS written",
}

#: Vectors of another dimension would break the index, so stale ones go first.
CLEAR_VECTORS: dict[Label, str] = {
    Label.USER: "MATCH (n:User) WHERE n.emb_kge IS NOT NULL WITH n LIMIT $batch "
    "REMOVE n.emb_kge, n.emb_kge_model RETURN count(n) AS cleared",
    Label.ITEM: "MATCH (n:Item) WHERE n.emb_kge IS NOT NULL WITH n LIMIT $batch "
    "REMOVE n.emb_kge, n.emb_kge_model RETURN count(n) AS cleared",
    Label.TAG: "MATCH (n:Tag) WHERE n.emb_kge IS NOT NULL WITH n LIMIT $batch "
    "REMOVE n.emb_kge, n.emb_kge_model RETURN count(n) AS cleared",
    Label.ENTITY: "MATCH (n:Entity) WHERE n.emb_kge IS NOT NULL WITH n LIMIT $batch "
    "REMOVE n.emb_kge, n.emb_kge_model RETURN count(n) AS cleared",
}

DROP_INDEX: dict[Label, str] = {
    Label.USER: "DROP INDEX kge_user_embedding IF EXISTS",
    Label.ITEM: "DROP INDEX kge_item_embedding IF EXISTS",
    Label.TAG: "DROP INDEX kge_tag_embedding IF EXISTS",
    Label.ENTITY: "DROP INDEX kge_entity_embedding IF EXISTS",
}

_OPTIONS = (
    "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine', "
    "`vector.quantization.enabled`: false}}"
)
CREATE_INDEX: dict[Label, str] = {
    Label.USER: "CREATE VECTOR INDEX kge_user_embedding IF NOT EXISTS FOR (n:User) ON (n.emb_kge) " + _OPTIONS,
    Label.ITEM: "CREATE VECTOR INDEX kge_item_embedding IF NOT EXISTS FOR (n:Item) ON (n.emb_kge) " + _OPTIONS,
    Label.TAG: "CREATE VECTOR INDEX kge_tag_embedding IF NOT EXISTS FOR (n:Tag) ON (n.emb_kge) " + _OPTIONS,
    Label.ENTITY: "CREATE VECTOR INDEX kge_entity_embedding IF NOT EXISTS FOR (n:Entity) ON (n.emb_kge) " + _OPTIONS,
}

AWAIT_INDEXES = "CALL db.awaitIndexes($seconds)"

#: Nearest nodes by the index, for analysts and for the test that compares with numpy.
QUERY_NEIGHBOURS = (
    "CALL db.index.vector.queryNodes($index, $k, $vector) YIELD node, score "
    "RETURN node.id AS id, node.iri AS iri, score"
)


class CypherRunner(Protocol):
    """What write-back needs from a store (``Neo4jStore``)."""

    def run_write(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


@dataclass
class EmbeddingWriteResult:
    model: str
    dimensions: int
    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    indexes: list[str] = field(default_factory=list)
    batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": self.dimensions, "written": self.written,
                "skipped": self.skipped, "indexes": self.indexes, "batches": self.batches}


def node_vectors(artifact: KGEArtifact, label: Label) -> tuple[list[str], np.ndarray]:
    """Keys and real-valued vectors ([re | im] for complex models) of one label's nodes."""
    prefix = PREFIX[label]
    rows = [(e[len(prefix):], i) for i, e in enumerate(artifact.entities) if e.startswith(prefix)]
    keys = [k for k, _ in rows]
    idx = np.array([i for _, i in rows], dtype=np.int64)
    vectors = artifact.real_view(artifact.entity_vectors[idx]) if len(idx) else np.zeros((0, 0), np.float32)
    return keys, np.asarray(vectors, dtype=np.float64)


def _batches(keys: Sequence[str], vectors: np.ndarray, size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(keys), size):
        yield [{"key": k, "vector": v.tolist()} for k, v in zip(keys[start:start + size], vectors[start:start + size],
                                                                   strict=True)]


def write_embeddings(
    store: CypherRunner,
    artifact: KGEArtifact,
    labels: Sequence[Label] = (Label.USER, Label.ITEM, Label.TAG),
    batch_size: int = 1000,
    progress: Callable[[Label, int], None] | None = None,
    await_seconds: int = 300,
) -> EmbeddingWriteResult:
    """Replace ``emb_kge`` on the nodes of ``labels`` and (re)create their vector indexes.

    Nodes of the artifact that are not in the graph are counted as skipped. The index is
    dropped and recreated, since its dimension may change with the model.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    model = artifact.interaction.model
    dim = artifact.real_view(artifact.entity_vectors[:1]).shape[1]
    result = EmbeddingWriteResult(f"{model} ({artifact.fingerprint})", int(dim))
    for label in labels:
        keys, vectors = node_vectors(artifact, label)
        store.run_write(DROP_INDEX[label], {})
        while True:
            cleared = store.run_write(CLEAR_VECTORS[label], {"batch": 10_000})
            if not cleared or not cleared[0].get("cleared"):
                break
        written = 0
        for rows in _batches(keys, vectors, batch_size):
            out = store.run_write(SET_VECTORS[label], {"rows": rows, "model": model})
            written += int(out[0]["written"]) if out else 0
            result.batches += 1
            if progress is not None:
                progress(label, len(rows))
        result.written[label.value] = written
        result.skipped[label.value] = len(keys) - written
        store.run_write(CREATE_INDEX[label], {"dim": int(dim)})
        result.indexes.append(INDEX_NAME[label])
    store.run_write(AWAIT_INDEXES, {"seconds": await_seconds})
    return result


def numpy_neighbours(artifact: KGEArtifact, label: Label, key: str, k: int) -> list[tuple[str, float]]:
    """The k nodes of ``label`` nearest to ``key`` by cosine, as the vector index ranks them
    (the node itself first); Neo4j reports cosine as (1 + cos) / 2."""
    keys, vectors = node_vectors(artifact, label)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    q = unit[keys.index(key)]
    sims = unit @ q
    order = np.lexsort((np.arange(len(keys)), -sims))[:k]
    return [(keys[i], float((1 + sims[i]) / 2)) for i in order]


__all__ = ["QUERY_NEIGHBOURS", "EmbeddingWriteResult", "numpy_neighbours", "write_embeddings"]
