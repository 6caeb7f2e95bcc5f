"""A real Neo4j store loaded with a graph for one test or module, emptied afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graph.records import GraphRecords
from graph.store import GraphStore, open_store


@contextmanager
def loaded_neo4j(uri: str, records: GraphRecords) -> Iterator[GraphStore]:
    """Open the test server, replace its graph with ``records``, and empty it on the way out."""
    store = open_store(uri)
    try:
        store.clear()
        store.load(records)
        yield store
        store.clear()
    finally:
        store.close()
