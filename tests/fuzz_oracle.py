"""What a fuzzed request may do to the store: exactly what it acknowledged, nothing else.

``StoreOracle`` keeps a shadow MemoryStore next to the one the app writes. A request answered
201 has its rows (parsed by the API's own rules) applied to the shadow, and then the app's
store, read back from disk, must equal the shadow; any other answer must leave the store's
files byte for byte as they were. Shared by ``tests/test_schemathesis.py`` (50 examples per
operation) and ``benchmarks/fuzz.py`` (500 or more).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import params
from graph.memory import MemoryStore
from graph.records import GraphRecords

#: Valid requests must answer as documented; invalid ones need only no 5xx and JSON errors.
POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance]
NEGATIVE_CHECKS = [not_a_server_error, content_type_conformance]

#: How each write path's rows are parsed and applied (the API's parsers, the stores' upserts).
WRITES = {
    "/v1/interactions": (params.interaction, "upsert_interactions"),
    "/v1/users": (params.user, "upsert_users"),
    "/v1/items": (params.item, "upsert_items"),
}


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
        write = WRITES.get(path.split("?", 1)[0]) if method == "POST" else None
        if status != 201 or write is None:
            if digest(self.store_dir) != self._before:
                return f"{method} {path} answered {status} but the store's files changed"
            return None
        parse, upsert = write
        rows, was_list = params.as_rows(params.json_loads(body or b""), 1_000_000)
        getattr(self.shadow, upsert)([parse(r, params.prefix_for(n, was_list)) for n, r in enumerate(rows)])
        if canonical(MemoryStore(self.store_dir).export()) != canonical(self.shadow.export()):
            return f"{method} {path} answered 201 but the store does not hold exactly the acknowledged rows"
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
