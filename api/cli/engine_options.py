"""``--engine local|ray``, ``--workers N`` and ``--ray-address`` for the batch commands.

``recommend``, ``writeback`` and ``evaluate`` take them through ``engine_options`` and build
their engine with ``open_engine``; ``train`` takes the same flags for kge's data-parallel
training. The address defaults to ``RAY_ADDRESS``; without either a local cluster is started.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from recommenders.batch import ENGINES, BatchEngine, Payload, engine_class

engine_option = click.option(
    "--engine", type=click.Choice(list(ENGINES)), default="local", show_default=True,
    help="Run the per-user work in this process, or on Ray workers.")
workers_option = click.option(
    "--workers", type=click.IntRange(1), default=None,
    help="Ray workers (default 2; --engine local runs one process whatever N).")
address_option = click.option(
    "--ray-address", envvar="RAY_ADDRESS", default=None,
    help="Ray cluster to join (ray://HOST:10001 or HOST:6379; env RAY_ADDRESS); default: a local cluster.")


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--engine``, ``--workers`` and ``--ray-address`` to a command."""
    for option in (address_option, workers_option, engine_option):
        command = option(command)
    return command


def open_engine(engine: str, payload: Payload, workers: int | None, address: str | None) -> BatchEngine:
    """The chosen engine over ``payload``; a Ray that cannot start is a one-line error."""
    cls = engine_class(engine)
    try:
        return cls(payload, workers=workers or cls.default_workers, address=address)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
