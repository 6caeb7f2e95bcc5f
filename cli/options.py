"""Options shared by several ``kgrec`` commands.

They live apart from the group (``kgrec.cli``) so command modules can import them without
importing the module that imports every command.
"""

from __future__ import annotations

import click

from kgrec.graph.store_factory import DEFAULT_STORE_URL

store_option = click.option(
    "--store",
    "store_url",
    default=DEFAULT_STORE_URL,
    envvar="KGREC_STORE",
    show_default=True,
    help="memory://DIR or neo4j://HOST:PORT[/DATABASE] (credentials from KGREC_NEO4J_USER/PASSWORD).",
)
