"""``kgrec writeback``: write a bundle's results (recommendations, embeddings) into Neo4j for analysts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from kgrec.cli.engine_options import engine_options, open_engine
from kgrec.cli.options import store_option
from kgrec.graph.recommendation_writeback import RecRow, WritebackError, write_recommendations
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store
from kgrec.recommenders.base import HasNodeVectors

#: The bundle model whose artifact holds node embeddings (``recommenders.kge``).
EMBEDDING_MODEL = "kge"


@click.command()
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False), help="A `kgrec train` bundle.")
@click.option("--model", help="The bundle model whose recommendations are written.")
@click.option("--k", default=20, show_default=True, type=click.IntRange(1, 1000), help="Recommendations per user.")
@click.option("--embeddings/--no-embeddings", "embeddings", default=None,
              help="Write the bundle's KGE vectors and vector indexes too (default: when the bundle has them).")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1),
              help="Relationships per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@store_option
@engine_options
def writeback(bundle_dir: str, model: str | None, k: int, embeddings: bool | None, batch_size: int, as_json: bool,
              store_url: str, engine: str, workers: int | None, ray_address: str | None) -> None:
    """Replace MODEL's (:User)-[:RECOMMENDED]->(:Item) relationships with its current top K.

    Each batch deletes the model's old recommendations for its users and creates the new
    ones in one transaction; rerunning gives the same relationships. When the bundle holds
    a `kge` model its vectors are written as `emb_kge` properties with vector indexes.
    With --engine ray the recommendations are computed on Ray workers (the same rows).
    """
    from kgrec.recommenders.bundle.model_bundle import Bundle

    if model is None and not embeddings:
        raise click.UsageError("give --model M (recommendations) and/or --embeddings")
    try:
        bundle = Bundle.load(bundle_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if model is not None and model not in bundle.models:
        raise click.UsageError(f"model {model!r} is not in the bundle; it has: {', '.join(bundle.models)}")
    vectors = bundle.models.get(EMBEDDING_MODEL)
    artifact = vectors.node_vectors() if isinstance(vectors, HasNodeVectors) else None
    if embeddings and artifact is None:
        raise click.UsageError(f"--embeddings: the bundle has no {EMBEDDING_MODEL!r} model with vectors")
    write_vectors = artifact is not None and embeddings is not False
    summary: dict[str, Any] = {}
    try:
        with open_store(store_url) as store:
            if not hasattr(store, "run_write"):
                raise click.UsageError(f"writeback needs a Neo4j store (--store neo4j://HOST:PORT), not {store_url}")
            if model is not None:
                users = bundle.snapshot.users.ids
                with _own_rows(bundle, Path(bundle_dir), model, k, store, (engine, workers, ray_address)) as rows:
                    summary["recommendations"] = write_recommendations(
                        store, model, rows, users=users, batch_size=batch_size
                    ).to_dict()
            if write_vectors:
                from kgrec.embeddings.vector_writeback import write_embeddings

                assert artifact is not None  # write_vectors says so
                summary["embeddings"] = write_embeddings(store, artifact).to_dict()
    except (StoreError, WritebackError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary))
        return
    if "recommendations" in summary:
        r = summary["recommendations"]
        click.echo(
            f"{r['model']}: {r['created']:,} recommendations for {r['users']:,} users written "
            f"({r['deleted']:,} old ones replaced, {r['skipped']:,} skipped: user or item not in the graph) "
            f"in {r['batches']} transactions"
        )
    if "embeddings" in summary:
        e = summary["embeddings"]
        written = ", ".join(f"{n:,} {label}" for label, n in e["written"].items())
        indexes = ", ".join(e["indexes"])
        click.echo(f"embeddings {e['model']}, {e['dimensions']} dimensions: {written}; indexes {indexes}")


@contextmanager
def _own_rows(bundle: Any, directory: Path, model: str, k: int, store: GraphStore,
              engine: tuple[str, int | None, str | None]) -> Iterator[Iterator[RecRow]]:
    """Every user's rows of the model's own items through the read path, with the store's state
    applied: what a user disliked, hidden items and interactions since the bundle are never
    written as recommendations. The state is read here; the engine scores the users, and the
    rows stream to the writer while it runs."""
    from kgrec.recommenders.batch.batch_tasks import ModelOptions, own_rows_block
    from kgrec.recommenders.batch.engines import Payload
    from kgrec.recommenders.serving.live_state import LiveState
    from kgrec.recommenders.serving.server import Server
    from kgrec.recommenders.serving.server_loading import load_server

    server = Server.from_bundle(bundle)
    live = LiveState(server, lambda fn: fn(store), max_users=1)
    name, workers, address = engine
    payload = Payload(load=load_server, directory=directory, loaded=server, verified=bundle.seal)
    with open_engine(name, payload, workers, address) as runner:
        yield (row for _, user_rows in runner.run(own_rows_block, ModelOptions(model, k), server.snapshot.users.ids,
                                                  desc=f"recommend {model}", state=lambda u: live.state(u).state)
               for row in user_rows)
