"""``kgrec writeback``: write a bundle model's recommendations into Neo4j for analysts."""

from __future__ import annotations

import json

import click

from api.cli import store_option
from graph.store import StoreError, open_store
from graph.writeback import WritebackError, recommendation_rows, write_recommendations


@click.command()
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False), help="A `kgrec train` bundle.")
@click.option("--model", required=True, help="The bundle model whose recommendations are written.")
@click.option("--k", default=20, show_default=True, type=click.IntRange(1, 1000), help="Recommendations per user.")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1),
              help="Relationships per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@store_option
def writeback(bundle_dir: str, model: str, k: int, batch_size: int, as_json: bool, store_url: str) -> None:
    """Replace MODEL's (:User)-[:RECOMMENDED]->(:Item) relationships with its current top K.

    Each batch deletes the model's old recommendations for its users and creates the new
    ones in one transaction; rerunning gives the same relationships.
    """
    from tqdm import tqdm

    from recommenders.bundle import Bundle

    try:
        bundle = Bundle.load(bundle_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if model not in bundle.models:
        raise click.UsageError(f"model {model!r} is not in the bundle; it has: {', '.join(bundle.models)}")
    users = bundle.snapshot.users.ids
    try:
        with open_store(store_url) as store:
            if not hasattr(store, "run_write"):
                raise click.UsageError(f"writeback needs a Neo4j store (--store neo4j://HOST:PORT), not {store_url}")
            progress = tqdm(users, unit="user", desc=f"recommend {model}", disable=None)
            rows = recommendation_rows(bundle.models[model], progress, k)
            result = write_recommendations(store, model, rows, users=users, batch_size=batch_size)
    except (StoreError, WritebackError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary = result.to_dict()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"{model}: {summary['created']:,} recommendations for {summary['users']:,} users written "
        f"({summary['deleted']:,} old ones replaced, {summary['skipped']:,} skipped: user or item not in the graph) "
        f"in {summary['batches']} transactions"
    )
