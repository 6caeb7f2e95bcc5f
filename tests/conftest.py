"""Shared fixtures: small synthetic graphs, the real Neo4j server the test command starts, and a
guard that fails the run if any test wrote into the working tree instead of its temporary folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgrec.graph.memory import MemoryStore
from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.graph.store import GraphStore
from kgrec.loaders.synthetic import SyntheticGraph, generate

ROOT = Path(__file__).resolve().parent.parent
#: Folders the guard does not watch: tools' own caches, the shared virtualenv and Neo4j jars.
UNWATCHED = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis", "__pycache__", "target"}

# Hypothesis (and schemathesis on top of it) keeps a cache; it goes to a temporary folder too.
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    _hypothesis_home = tempfile.mkdtemp(prefix="kgrec-hypothesis-")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _hypothesis_home
    atexit.register(shutil.rmtree, _hypothesis_home, True)


def tree_state(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``root`` outside ``UNWATCHED``, symlinks not followed."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in UNWATCHED]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            state[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return state


@pytest.fixture(scope="session", autouse=True)
def working_tree_untouched() -> Iterator[None]:
    """Fail the session if a test created, changed or deleted a file of the working tree (data/
    included: a test once replaced the user's data/bundle). Tests write under tmp_path only."""
    before = tree_state()
    yield
    after = tree_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        pytest.fail(f"tests changed the working tree {ROOT}: {', '.join(changed[:10])}", pytrace=False)


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
        from kgrec.graph.neo4j_store import Neo4jStore

        s = Neo4jStore.from_url(request.getfixturevalue("neo4j_uri"))
        s.clear()
    try:
        yield s
    finally:
        s.close()
