"""A real Neo4j store loaded with a graph for one test or module, emptied afterwards; and a
server of a module's own for the tests that freeze, stop and restart it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kgrec.graph.records import GraphRecords
from kgrec.graph.store import GraphStore
from kgrec.graph.store_factory import open_store


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


NEO4J_LOCAL = Path(__file__).resolve().parent.parent / "deploy" / "neo4j" / "neo4j-local"


@dataclass
class Instance:
    """A Neo4j server of this test module's own (``neo4j-local`` in ``directory``), which the
    tests may freeze, stop and restart without disturbing the shared test server."""

    directory: Path
    uri: str = ""

    @property
    def port(self) -> int:
        return int(self.uri.rsplit(":", 1)[1])

    def pid(self) -> int:
        return int((self.directory / "neo4j.pid").read_text().strip())

    def start(self, port: int | None = None) -> str:
        args = ["start", "--dir", str(self.directory), "--heap", "512m", "--pagecache", "64m"]
        out = subprocess.run([str(NEO4J_LOCAL), *args, *(["--port", str(port)] if port else [])],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"neo4j-local start failed: {out.stderr[-2000:]}")
        self.uri = out.stdout.strip().splitlines()[-1]
        return self.uri

    def stop(self) -> None:
        subprocess.run([str(NEO4J_LOCAL), "stop", "--dir", str(self.directory)], capture_output=True, timeout=120)


@contextmanager
def dedicated_neo4j(directory: Path) -> Iterator[Instance]:
    """Start a throwaway server for one module (SIGSTOP and restarts stay out of the shared one)."""
    instance = Instance(directory)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
