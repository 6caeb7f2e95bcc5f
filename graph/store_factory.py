"""``open_store(url)``: the one place that knows which class serves which URL scheme."""

from __future__ import annotations

import os

from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError

DEFAULT_STORE_URL = "memory://data/graph"


def open_store(url: str | None = None, existing: bool = False) -> GraphStore:
    """Open a store by URL.

    ``memory://PATH``: everything after ``memory://`` is a directory (relative allowed); it is
    created by the first write, or, with ``existing``, must already be there (commands that only
    read: a mistyped path is an error, not an empty graph).
    ``neo4j://HOST:PORT[/DATABASE]`` or ``bolt://…``: credentials come from
    ``KGREC_NEO4J_USER`` / ``KGREC_NEO4J_PASSWORD``, never from the URL.
    """
    url = url or os.environ.get("KGREC_STORE") or DEFAULT_STORE_URL
    if url.startswith("memory://"):
        from kgrec.graph.memory import MemoryStore

        path = url[len("memory://") :]
        if not path:
            raise StoreError("memory:// needs a directory path, e.g. memory://data/graph")
        if existing and not os.path.isdir(path):
            raise StoreError(f"no memory store at {path} (nothing was loaded there; see `kgrec load`)")
        return MemoryStore(path)
    for scheme in ("neo4j://", "bolt://", "neo4j+s://", "bolt+s://"):
        if url.startswith(scheme):
            from kgrec.graph.neo4j_store import Neo4jStore

            return Neo4jStore.from_url(url)
    raise StoreError(f"unsupported store URL {url!r}: use memory://DIR or neo4j://HOST:PORT[/DATABASE]")
