"""``kgrec export`` and ``kgrec import``: the graph as RDF (Turtle, N-Triples) and back, and
``kgrec export --format neo4j-csv DIR``: neo4j-admin import files for a bulk load."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kgrec.cli.options import store_option
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store


@click.command("export")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@store_option
@click.option("--format", "fmt", type=click.Choice(["ttl", "nt", "neo4j-csv"]), default="ttl", show_default=True,
              help="Turtle, N-Triples, or a folder of neo4j-admin import files (neo4j-csv).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="RDF file to write (the same as DEST; default: standard output).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def export(dest: Path | None, store_url: str, fmt: str, output: Path | None, no_progress: bool) -> None:
    """Export the whole graph to DEST: RDF (vocabulary: https://kgrec.dev/ns#), or with
    --format neo4j-csv a new folder of neo4j-admin import files (see deploy/neo4j/neo4j-local import)."""
    if dest is not None and output is not None:
        raise click.UsageError("give DEST or --output, not both")
    output = dest or output
    if fmt == "neo4j-csv":
        _export_neo4j_csv(store_url, output)
        return
    from tqdm import tqdm

    from kgrec.graph.rdf_export import export_rdf

    try:
        with open_store(store_url) as store, tqdm(
            desc="triples", unit="", disable=no_progress or None, file=sys.stderr, leave=False
        ) as bar:
            if output is None:
                n = export_rdf(store, sys.stdout.buffer, fmt, bar.update)
                sys.stdout.flush()
            else:
                tmp = output.with_name(f".{output.name}.tmp")
                try:
                    n = export_rdf(store, tmp, fmt, bar.update)
                    tmp.replace(output)
                finally:
                    tmp.unlink(missing_ok=True)
    except (StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"exported {n:,} triples" + (f" to {output}" if output else ""), err=True)


def _export_neo4j_csv(store_url: str, folder: Path | None) -> None:
    from kgrec.graph.neo4j_csv import export_neo4j_csv

    if folder is None:
        raise click.UsageError("--format neo4j-csv writes a folder: give DEST")
    try:
        with open_store(store_url) as store:
            manifest = export_neo4j_csv(store.export(), folder)
    except (StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    counts = manifest["counts"]
    click.echo(f"exported {counts['nodes']:,} nodes and {counts['relationships']:,} relationships in "
               f"{len(manifest['nodes']) + len(manifest['relationships'])} files to {folder}")
    click.echo(f"import into a stopped local instance: deploy/neo4j/neo4j-local import --dir DIR --from {folder}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@store_option
@click.option("--format", "fmt", type=click.Choice(["ttl", "nt", "xml", "jsonld", "n3", "trig"]),
              help="RDF syntax (default: from the file extension).")
@click.option("--item-prefix", "item_prefixes", multiple=True, metavar="IRI",
              help="IRIs starting with this prefix name items: the rest of the IRI is the item id. Repeatable.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def import_(file: Path, store_url: str, fmt: str | None, item_prefixes: tuple[str, ...], no_progress: bool) -> None:
    """Import RDF: a kgrec export, or third-party triples about items (become RELATED facts).

    Triples that cannot be mapped are counted by reason and shown, never dropped silently.
    """
    from tqdm import tqdm

    from kgrec.graph.rdf_import import parse, read_graph
    from kgrec.graph.schema import Label

    try:
        with open_store(store_url) as store, tqdm(
            total=3, desc="parse", unit="step", disable=no_progress or None, file=sys.stderr, leave=False
        ) as bar:
            graph = parse(file, fmt)
            bar.set_description("map")
            bar.update()
            result = read_graph(graph, lambda key: store.get_node(Label.ITEM, key) is not None, item_prefixes)
            bar.set_description("write")
            bar.update()
            store.load(result.records)
            bar.update()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    counts = result.counts
    click.echo(f"read {result.triples:,} triples from {file}")
    click.echo("imported " + ", ".join(f"{k} {counts[k]:,}" for k in COUNT_KEYS if counts[k]) if any(
        counts.values()) else "imported nothing")
    total = sum(result.unmapped.values())
    if total:
        click.echo(f"unmapped {total:,} triples:")
        for reason, n in result.unmapped.most_common():
            click.echo(f"  {n:>8,}  {reason}")
            for example in result.examples[reason][:2]:
                click.echo(f"            e.g. {example}")
