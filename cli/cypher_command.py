"""``kgrec cypher``: list and run the Cypher cookbook against a Neo4j store."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import click

from kgrec.cli.options import store_option
from kgrec.graph.cypher import Cookbook, CookbookError, Query
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store


def coerce(query: Query, name: str, raw: str) -> Any:
    """Turn ``--param name=raw`` into the type the query declares for ``name``.

    Typing by declaration (not by the look of the value) keeps numeric ids such as
    Last.fm's ``"89"`` strings when the query wants a string.
    """
    kinds = {p.name: p.type for p in query.params}
    kind = kinds.get(name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if kind == "list":
            value = json.loads(raw)
            if not isinstance(value, list):
                raise ValueError(raw)
            return value
    except ValueError:
        raise CookbookError(f"{query.name}: parameter {name} must be {kind}, got {raw!r}") from None
    return raw


def parse_params(query: Query, pairs: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise CookbookError(f"--param expects NAME=VALUE, got {pair!r}")
        params[name.strip()] = coerce(query, name.strip(), raw)
    return query.bind(params)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as a plain aligned table, CSV (lists as JSON cells) or a JSON array."""
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2, default=str)
    columns: list[str] = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) if not isinstance(row[c], float) else repr(row[c]) for c in columns])
        return buf.getvalue().rstrip("\n")
    if not rows:
        return "(no rows)"
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[n]) for r in cells)) for n, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


@click.command()
@click.argument("name", required=False)
@click.option("--list", "list_queries", is_flag=True, help="List the cookbook: name, parameters, purpose.")
@click.option("--param", "-p", "pairs", multiple=True, metavar="NAME=VALUE", help="A query parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--show", is_flag=True, help="Print the query text instead of running it.")
@store_option
def cypher(name: str | None, list_queries: bool, pairs: tuple[str, ...], fmt: str, show: bool, store_url: str) -> None:
    """Run a named query from the Cypher cookbook (graph/cypher/) as a read transaction."""
    cookbook = Cookbook()
    if list_queries:
        width = max(len(q.name) for q in cookbook.list())
        for q in cookbook.list():
            click.echo(f"{q.name:<{width}}  {q.purpose}\n{'':<{width}}  params: {q.signature()}")
        return
    if not name:
        raise click.UsageError("give a query NAME or --list")
    try:
        query = cookbook.get(name)
        params = parse_params(query, pairs)
    except CookbookError as exc:
        raise click.UsageError(str(exc)) from None
    if show:
        click.echo(query.text)
        return
    try:
        with open_store(store_url) as store:
            run_read = getattr(store, "run_read", None)
            if run_read is None:
                raise click.UsageError(f"the cookbook needs a Neo4j store (--store neo4j://HOST:PORT), not {store_url}")
            rows = list(run_read(query.text, params))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_rows(rows, fmt))
