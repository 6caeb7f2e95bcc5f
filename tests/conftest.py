"""Shared fixtures: small synthetic graphs, and the real Neo4j server the test command starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph.memory import MemoryStore
from graph.snapshot import GraphSnapshot, build_snapshot
from graph.store import GraphStore
from loaders.synthetic import SyntheticGraph, generate


@pytest.fixture(scope="session")
def synthetic() -> SyntheticGraph:
    """A small planted-structure graph (120 users, 200 items), identical in every run."""
    return generate(users=120, items=200, seed=7)


@pytest.fixture(scope="session")
def snapshot(synthetic: SyntheticGraph) -> GraphSnapshot:
    return build_snapshot(synthetic.records)


@pytest.fixture(scope="session")
def neo4j_uri() -> str:
    """The URI of the throwaway server ``make test`` started; in CI a missing one fails."""
    uri = os.environ.get("KGREC_TEST_NEO4J_URI")
    if not uri:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but KGREC_TEST_NEO4J_URI is unset: the Neo4j suite must run in CI")
        pytest.skip("no Neo4j server: set KGREC_TEST_NEO4J_URI or run `make test`")
    return uri


@pytest.fixture(scope="session")
def datasets_dir() -> str:
    """The real datasets folder (``KGREC_DATASETS``); tests that need it skip without it."""
    path = os.environ.get("KGREC_DATASETS")
    if not path or not os.path.isdir(path):
        pytest.skip("KGREC_DATASETS is not set to the datasets folder")
    return path


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each kind: contract tests run against both (Neo4j's database is cleared)."""
    if request.param == "memory":
        s: GraphStore = MemoryStore(tmp_path / "graph")
    else:
        from graph.neo4j_store import Neo4jStore

        s = Neo4jStore.from_url(request.getfixturevalue("neo4j_uri"))
        s.clear()
    try:
        yield s
    finally:
        s.close()
