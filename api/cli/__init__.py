"""The ``kgrec`` command line: one module per command, registered on one click group.

Heavy imports (torch, pykeen, flask) stay inside the commands so ``kgrec --help`` is fast.
"""

from __future__ import annotations

import click

from api.cli.group import OneLineErrorGroup
from graph.store import DEFAULT_STORE_URL


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kgrec")
def main() -> None:
    """kgrec: knowledge-graph recommendations with reasons you can replay in Cypher."""


store_option = click.option(
    "--store",
    "store_url",
    default=DEFAULT_STORE_URL,
    envvar="KGREC_STORE",
    show_default=True,
    help="memory://DIR or neo4j://HOST:PORT[/DATABASE] (credentials from KGREC_NEO4J_USER/PASSWORD).",
)


def _register() -> None:
    from api.cli import demo, load, stats

    main.add_command(stats.stats)
    from api.cli import evaluate

    main.add_command(evaluate.evaluate)
    main.add_command(load.load)
    main.add_command(demo.demo)
    from api.cli import cypher, schema, writeback

    main.add_command(cypher.cypher)
    main.add_command(schema.schema)
    main.add_command(writeback.writeback)

    from api.cli import rdf

    main.add_command(rdf.export)
    main.add_command(rdf.import_)

    from api.cli import serve

    main.add_command(serve.serve)

    from api.cli import recommend, train

    main.add_command(train.train)
    main.add_command(recommend.recommend)


_register()
