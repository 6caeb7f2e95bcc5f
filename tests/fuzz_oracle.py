"""What a fuzzed request may do to the store: exactly what it acknowledged, nothing else.

``StoreOracle`` keeps a shadow MemoryStore next to the one the app writes. A request answered
201 has its rows (parsed by the API's own rules) applied to the shadow, and then the app's
store, read back from disk, must equal the shadow; any other answer must leave the store's
files byte for byte as they were. Shared by ``tests/test_schemathesis.py`` (50 examples per
operation) and ``benchmarks/fuzz.py`` (500 or more).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kgrec.api import params
from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import Dislike, GraphRecords, Interaction

#: Valid requests must answer as documented; invalid ones need only no 5xx and JSON errors.
POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance]
NEGATIVE_CHECKS = [not_a_server_error, content_type_conformance]

def _feedback(shadow: MemoryStore, rows: list[Any]) -> None:
    """Positive rows and dislikes, as the API splits them."""
    parsed = [params.feedback(r) for r in rows]
    shadow.upsert_interactions([r for r in parsed if isinstance(r, Interaction)])
    shadow.upsert_dislikes([r for r in parsed if isinstance(r, Dislike)])


#: How each POST path's rows are parsed and applied (the API's parsers, the stores' upserts).
WRITES: dict[str, Callable[[MemoryStore, list[Any]], None]] = {
    "/v1/interactions": _feedback,
    "/v1/users": lambda shadow, rows: shadow.upsert_users([params.user(r) for r in rows]),
    "/v1/items": lambda shadow, rows: shadow.upsert_items([params.item(r) for r in rows]),
}
#: ``PATCH /v1/items/{id}`` answered 200: the item's hidden flag.
PATCH_ITEM = "/v1/items/"


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def canonical(records: GraphRecords) -> dict[str, list[str]]:
    return {kind: sorted(map(repr, rows)) for kind, rows in vars(records).items()}


class StoreOracle:
    """Checks one request at a time: ``before()``, send it, then ``after(...)``."""

    def __init__(self, store_dir: Path, shadow_dir: Path) -> None:
        self.store_dir = store_dir
        self.shadow = MemoryStore(shadow_dir)
        self.shadow.load(MemoryStore(store_dir).export())
        self._before = ""

    def before(self) -> None:
        self._before = digest(self.store_dir)

    def after(self, method: str, path: str, body: bytes | None, status: int) -> str | None:
        """None when the store holds exactly what was acknowledged; else what went wrong."""
        route = path.split("?", 1)[0]
        write = WRITES.get(route) if method == "POST" and status == 201 else None
        patched = method == "PATCH" and status == 200 and route.startswith(PATCH_ITEM)
        if write is None and not patched:
            if digest(self.store_dir) != self._before:
                return f"{method} {path} answered {status} but the store's files changed"
            return None
        parsed = params.json_loads(body or b"")
        if patched:
            self.shadow.set_hidden([unquote(route[len(PATCH_ITEM):])], params.hidden_flag(parsed))
        else:
            write(self.shadow, params.as_rows(parsed, 1_000_000)[0])
        if canonical(MemoryStore(self.store_dir).export()) != canonical(self.shadow.export()):
            return f"{method} {path} answered {status} but the store does not hold exactly the acknowledged rows"
        return None


def sent_body(response: Any) -> bytes | None:
    """The body schemathesis actually sent with the request behind ``response``."""
    body = getattr(getattr(response, "request", None), "body", None)
    return body.encode() if isinstance(body, str) else body


def with_known_ids(case: Any, users: list[str], items: list[str], draw: int) -> Any:
    """Point half the drawn ids at users and items the graph has: schemathesis invents ids,
    which all answer 404 and would leave reads and the interaction write path untried."""
    known = {"user_id": users, "item_id": items, "user": users, "item": items}
    params = getattr(case, "path_parameters", None) or {}
    body = getattr(case, "body", None)
    rows = [r for r in (body if isinstance(body, list) else [body]) if isinstance(r, dict)]
    for n, fields in enumerate([params, *rows]):
        for name in [k for k in fields if k in known and (draw + n) % 2 == 0]:
            ids = known[name]
            fields[name] = ids[(draw + n) % len(ids)]
    return case
