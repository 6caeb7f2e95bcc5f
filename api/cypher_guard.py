r"""What ``POST /v1/cypher`` lets an analyst run: read clauses and allow-listed procedures only.

A read transaction already stops writes, but reads can do harm: ``LOAD CSV`` makes the
database server fetch URLs (probing the internal network, reading its files), ``SHOW`` /
``TERMINATE TRANSACTIONS`` see and stop other clients' work, ``SHOW USERS`` and ``dbms.*``
procedures read the server's configuration. Two checks, both must pass:

1. ``check_text`` tokenises the query the way Neo4j does (line comments end at ``\n`` or
   ``\r``, block comments, '…' and "…" strings with escapes, backtick-quoted names,
   ``\uXXXX`` escapes in names, which spell the name they encode, ``$parameters``, numbers that
   end where their digits do, any case and spacing) and then holds it to an allowlist: the
   query must start with a read clause (``MATCH``, ``OPTIONAL``, ``WITH``, ``UNWIND``,
   ``RETURN``, ``CALL``); no word in keyword position may be a clause that loads, writes,
   administers or switches database; every ``CALL`` names a subquery or an allow-listed
   procedure; every namespaced function called anywhere (a map value, a list, an argument)
   belongs to Cypher's own temporal, spatial and vector namespaces. A word is in keyword
   position unless it follows ``.`` (a property), ``:`` or ``|`` (a label or type), is the one
   name after a keyword ``AS`` (an alias: ``AS AS LOAD`` aliases ``AS``, and ``LOAD`` is a
   keyword again) or is followed by ``:`` (a map key); a variable that must be called ``set``
   or ``load`` is written `` `set` ``. A backslash outside a string or a name is refused.
2. ``check_plan`` reads the server's own plan of the query (``EXPLAIN``, which runs nothing):
   no ``LoadCSV``, no ``Show…``/``Terminate…``/administration operator, and every
   ``ProcedureCall`` an allow-listed procedure, whatever syntax reached it.

Refusals are ``Forbidden`` (403 ``forbidden_clause``); text that cannot be tokenised
(an unterminated string or comment) is ``ValueError`` (400).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Words a query may start with.
READ_START = frozenset({"MATCH", "OPTIONAL", "WITH", "UNWIND", "RETURN", "CALL"})
#: Clause words never allowed in keyword position: loading, writing, administration, another database.
FORBIDDEN = frozenset({
    "LOAD", "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "FOREACH", "INSERT", "SHOW", "TERMINATE",
    "DROP", "ALTER", "GRANT", "DENY", "REVOKE", "USE", "PERIODIC", "TRANSACTIONS", "DEALLOCATE", "REALLOCATE",
})
#: Procedures an analyst may CALL: what the cookbook (graph/cypher/*.cypher) needs, index
#: lookups and schema introspection; all read-only and local to the database.
PROCEDURES = frozenset({
    "db.index.vector.queryNodes", "db.index.vector.queryRelationships",
    "db.index.fulltext.queryNodes", "db.index.fulltext.queryRelationships",
    "db.labels", "db.relationshipTypes", "db.propertyKeys",
    "db.schema.visualization", "db.schema.nodeTypeProperties", "db.schema.relTypeProperties",
})
#: Namespaces of Cypher's built-in namespaced functions (date.truncate, point.distance, …).
FUNCTION_NAMESPACES = frozenset({"date", "datetime", "localdatetime", "time", "localtime", "duration", "point",
                                 "vector"})
FUNCTIONS = frozenset({"db.nameFromElementId"})


class Forbidden(Exception):
    """The query uses something ``/v1/cypher`` does not run; the message says what."""


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted, string, number, param, punct
    text: str  # a word as written; a quoted name without its backticks


_ESCAPE = r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"
_TOKEN = re.compile(rf"""
    (?P<space>\s+)
  | (?P<line>//[^\n\r\u2028\u2029]*)
  | (?P<block>/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<param>\$(?:`(?:[^`]|``)*`|\w+))
  | (?P<number>\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)
  | (?P<word>(?:[^\W\d]|{_ESCAPE})(?:\w|{_ESCAPE})*)
  | (?P<open>/\*|['"`])
  | (?P<punct>.)
""", re.VERBOSE | re.DOTALL)
_ESCAPES = re.compile(_ESCAPE)


def _unescape(word: str) -> str:
    """A name as Neo4j reads it: ``\\u004cOAD`` is ``LOAD``."""
    return _ESCAPES.sub(lambda m: chr(int(m.group()[2:], 16)) if int(m.group()[2:], 16) < 0x110000 else "\ufffd",
                        word) if "\\" in word else word


def tokens(text: str) -> list[Token]:
    """The query's tokens without spaces and comments; ValueError for an unterminated string,
    name or comment (the server would refuse it too)."""
    out: list[Token] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "punct"
        value = m.group()
        if kind in ("space", "line", "block"):
            continue
        if kind == "open":
            what = "comment" if value == "/*" else "string or name"
            raise ValueError(f"unterminated {what} starting at character {m.start()}")
        if kind == "quoted":
            value = value[1:-1].replace("``", "`")
        elif kind == "word":
            value = _unescape(value)
        elif kind == "punct" and value == "\\":
            raise ValueError(f"a backslash outside a string or name at character {m.start()} is not Cypher")
        out.append(Token(kind, value))
    return out


def _keyword_positions(toks: list[Token]) -> list[bool]:
    """For each token, whether a word there would be read as a keyword (see the module docstring)."""
    out: list[bool] = []
    for i, tok in enumerate(toks):
        before = toks[i - 1] if i else None
        after = toks[i + 1] if i + 1 < len(toks) else None
        if before is not None and before.kind == "punct" and before.text in (".", ":", "|", "&", "!"):
            out.append(False)
        elif before is not None and before.kind == "word" and before.text.upper() == "AS" and out[i - 1]:
            out.append(False)  # the alias after a keyword AS (only one name: the next word is a keyword again)
        else:
            out.append(not (tok.kind == "word" and after is not None and after.kind == "punct" and after.text == ":"))
    return out


def _dotted(toks: list[Token], i: int) -> tuple[str, int]:
    """The dotted name starting at ``i`` (words or quoted parts) and the index after it."""
    parts = [toks[i].text]
    j = i + 1
    while j + 1 < len(toks) and toks[j].text == "." and toks[j].kind == "punct" and toks[j + 1].kind in (
            "word", "quoted"):
        parts.append(toks[j + 1].text)
        j += 2
    return ".".join(parts), j


def check_text(text: str) -> None:
    """Raise ``Forbidden`` unless ``text`` is a read query of allowed clauses, procedures and
    functions (see the module docstring); ``ValueError`` if it cannot be tokenised."""
    toks = tokens(text)
    if not toks:
        raise ValueError("the query is empty")
    first = toks[0]
    if first.kind != "word" or first.text.upper() not in READ_START:
        raise Forbidden(f"a query must start with one of {', '.join(sorted(READ_START))}; "
                        f"{first.text[:40]!r} is not run here")
    keyword = _keyword_positions(toks)
    i = 0
    while i < len(toks):
        tok = toks[i]
        i += 1
        if tok.kind == "word" and keyword[i - 1]:
            word = tok.text.upper()
            if word in FORBIDDEN:
                raise Forbidden(f"{word} is not allowed: /v1/cypher runs read clauses only "
                                "(write `name` in backticks if it is a variable)")
            if word == "CALL":
                i = _check_call(toks, i)
                continue
        if tok.kind in ("word", "quoted") and not (i > 1 and toks[i - 2].kind == "punct" and toks[i - 2].text == "."):
            _check_function(toks, i - 1)  # a name that starts a chain: a function if a "(" follows


def _check_function(toks: list[Token], i: int) -> None:
    """A (dotted) name at ``i`` followed by ``(`` is a function call, wherever it stands: a
    namespaced one must be allow-listed (names without a namespace are Cypher's built-ins)."""
    name, end = _dotted(toks, i)
    if end < len(toks) and toks[end].kind == "punct" and toks[end].text == "(" and "." in name \
            and not _function_allowed(name):
        raise Forbidden(f"function {name}() is not allowed: only Cypher's built-in functions run here")


def _check_call(toks: list[Token], i: int) -> int:
    """Check what follows the CALL before ``toks[i]``; returns where checking goes on."""
    nxt = toks[i] if i < len(toks) else None
    if nxt is None or (nxt.kind == "punct" and nxt.text in "{("):
        return i  # a subquery: its clauses are checked like the rest
    if nxt.kind not in ("word", "quoted"):
        raise Forbidden("CALL must name a subquery or an allow-listed procedure")
    name, end = _dotted(toks, i)
    if name not in PROCEDURES:
        raise Forbidden(f"procedure {name} is not allowed; allowed: {', '.join(sorted(PROCEDURES))}")
    return end


def _function_allowed(name: str) -> bool:
    return name in FUNCTIONS or name.split(".", 1)[0].lower() in FUNCTION_NAMESPACES


def _operators(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("children") or ():
        yield from _operators(child)


def check_plan(plan: dict[str, Any] | None) -> None:
    """Raise ``Forbidden`` if the server's plan loads files or URLs, runs a SHOW/TERMINATE or
    administration command, or calls a procedure outside ``PROCEDURES``."""
    for op in _operators(plan or {}):
        kind, _, database = str(op.get("operatorType", "")).partition("@")
        if database == "system" or kind.startswith(("Show", "Terminate", "Administration")) or kind == "LoadCSV":
            raise Forbidden(f"the query plans a {kind} operation, which /v1/cypher does not run")
        if kind == "ProcedureCall":
            details = str((op.get("args") or {}).get("Details", ""))
            name = details.split("(", 1)[0].strip().replace("`", "")
            if name not in PROCEDURES:
                raise Forbidden(f"procedure {name or '?'} is not allowed; allowed: {', '.join(sorted(PROCEDURES))}")
