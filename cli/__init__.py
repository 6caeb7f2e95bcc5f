"""The ``kgrec`` command line: one module per command, registered here on one click group.

Command modules import their shared options from ``kgrec.cli.options`` and never this module,
so the only edges are from here to them. Heavy imports (torch, pykeen, flask) stay inside the
commands so ``kgrec --help`` is fast.
"""

from __future__ import annotations

import click

from kgrec.cli.cypher_command import cypher
from kgrec.cli.demo_command import demo
from kgrec.cli.evaluate_command import evaluate
from kgrec.cli.group import OneLineErrorGroup
from kgrec.cli.load_commands import load
from kgrec.cli.models_command import models
from kgrec.cli.predict_command import predict
from kgrec.cli.rdf_commands import export, import_
from kgrec.cli.recommend_command import recommend
from kgrec.cli.schema_command import schema
from kgrec.cli.serve_command import serve
from kgrec.cli.stats_command import stats
from kgrec.cli.train_command import train
from kgrec.cli.writeback_command import writeback

__all__ = ["main"]


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kgrec")
def main() -> None:
    """kgrec: knowledge-graph recommendations with reasons you can replay in Cypher."""


# Registration order is the order ``kgrec --help`` lists them in (click sorts by name anyway).
for _command in (stats, evaluate, load, demo, cypher, schema, writeback, export, import_, serve, train, recommend,
                 models, predict):
    main.add_command(_command)
del _command
