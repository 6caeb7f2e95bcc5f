"""``kgrec stats``: counts of every node and relationship kind."""

from __future__ import annotations

import json

import click

from kgrec.cli.options import store_option
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(store_url: str, as_json: bool) -> None:
    """Print node and relationship counts of the graph."""
    try:
        with open_store(store_url, existing=True) as store:
            counts = store.counts()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({k: counts[k] for k in COUNT_KEYS}))
        return
    width = max(len(k) for k in COUNT_KEYS)
    for k in COUNT_KEYS:
        click.echo(f"{k:<{width}}  {counts[k]:>10,}")
