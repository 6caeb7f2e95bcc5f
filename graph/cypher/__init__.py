"""The Cypher cookbook: named, parameterised queries an analyst can run as they are.

Each query lives in its own ``.cypher`` file (package data) whose header says what it is:

    // name: also_played
    // purpose: one line
    // params: item (string), k (int)

Values only ever travel as ``$parameters``; labels and relationship types are fixed text
from ``graph.schema`` (a test parses every file to hold that line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

#: Parameter types a header may declare, and the Python types a value may have for each.
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list, tuple),
}

_HEADER = re.compile(r"^//\s*(name|purpose|params):\s*(.*?)\s*$")
_PARAM = re.compile(r"^([A-Za-z_]\w*)\s*\((\w+)\)$")
_USED = re.compile(r"\$([A-Za-z_]\w*)")


class CookbookError(ValueError):
    """An unknown query, a malformed file, or parameters that do not fit a query."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str


@dataclass(frozen=True)
class Query:
    """One cookbook entry: its name, one-line purpose, declared parameters and text."""

    name: str
    purpose: str
    params: tuple[Param, ...]
    text: str

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``values`` against the declared parameters and return them as a dict.

        Missing or unknown names and wrongly typed values raise ``CookbookError`` so a
        typo never reaches the server as a silently-null parameter.
        """
        declared = {p.name: p for p in self.params}
        missing = [p.name for p in self.params if p.name not in values]
        unknown = sorted(set(values) - set(declared))
        if missing:
            raise CookbookError(f"{self.name}: missing parameter(s) {', '.join(missing)} ({self.signature()})")
        if unknown:
            raise CookbookError(f"{self.name}: unknown parameter(s) {', '.join(unknown)} ({self.signature()})")
        bound: dict[str, Any] = {}
        for name, value in values.items():
            kind = declared[name].type
            ok = isinstance(value, PARAM_TYPES[kind]) and not (kind in ("int", "float") and isinstance(value, bool))
            if not ok:
                raise CookbookError(f"{self.name}: parameter {name} must be {kind}, got {value!r}")
            bound[name] = float(value) if kind == "float" else list(value) if kind == "list" else value
        return bound

    def signature(self) -> str:
        return ", ".join(f"{p.name} ({p.type})" for p in self.params) or "no parameters"


def parse_query(text: str, source: str = "<text>") -> Query:
    """Parse one ``.cypher`` file; the header must name it, say why, and declare every ``$param``."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        m = _HEADER.match(line)
        if m:
            header[m.group(1)] = m.group(2)
    for key in ("name", "purpose", "params"):
        if not header.get(key):
            raise CookbookError(f"{source}: header lacks '// {key}: ...'")
    params: list[Param] = []
    spec = header["params"]
    if spec != "(none)":
        for part in spec.split(","):
            m = _PARAM.match(part.strip())
            if not m or m.group(2) not in PARAM_TYPES:
                raise CookbookError(f"{source}: bad parameter declaration {part.strip()!r}; use 'name (type)'")
            params.append(Param(m.group(1), m.group(2)))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("//")).strip()
    used = set(_USED.findall(body))
    declared = {p.name for p in params}
    if used != declared:
        raise CookbookError(f"{source}: declared parameters {sorted(declared)} but the query uses {sorted(used)}")
    return Query(header["name"], header["purpose"], tuple(params), body)


class Cookbook:
    """The queries shipped in this package, read when the cookbook is made."""

    def __init__(self) -> None:
        self._queries: dict[str, Query] = {}
        for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".cypher"):
                continue
            query = parse_query(entry.read_text(encoding="utf-8"), entry.name)
            if query.name != entry.name.removesuffix(".cypher"):
                raise CookbookError(f"{entry.name}: header names it {query.name!r}; the file name must match")
            self._queries[query.name] = query

    def list(self) -> list[Query]:
        """Every query, sorted by name."""
        return [self._queries[name] for name in sorted(self._queries)]

    def get(self, name: str) -> Query:
        try:
            return self._queries[name]
        except KeyError:
            raise CookbookError(f"unknown query {name!r}; `kgrec cypher --list` shows the cookbook") from None

    def __contains__(self, name: object) -> bool:
        return name in self._queries

    def __len__(self) -> int:
        return len(self._queries)


def run(store: Any, name: str, params: Mapping[str, Any], cookbook: Cookbook | None = None) -> list[dict[str, Any]]:
    """Run a cookbook query on a Neo4j store as a read and return plain rows.

    Only stores that speak Cypher (``Neo4jStore.run_read``) can run it; others get a
    ``CookbookError`` that says so instead of an ``AttributeError``.
    """
    query = (cookbook or Cookbook()).get(name)
    bound = query.bind(params)
    run_read = getattr(store, "run_read", None)
    if run_read is None:
        raise CookbookError("the cookbook needs a Neo4j store: pass --store neo4j://HOST:PORT")
    return list(run_read(query.text, bound))
