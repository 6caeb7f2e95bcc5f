"""``--engine local|ray``, ``--workers N`` and ``--ray-address`` for the batch commands.

``recommend``, ``writeback`` and ``evaluate`` take them through ``engine_options`` and build
their engine with ``open_engine``; ``train`` takes the same flags (``train_engine_options``)
for kge's data-parallel training. The address defaults to ``RAY_ADDRESS``; without either a
local cluster is started.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from kgrec.recommenders.batch.engine_choice import ENGINES, engine_class
from kgrec.recommenders.batch.engines import BatchEngine, BatchError, Payload

engine_option = click.option(
    "--engine", type=click.Choice(list(ENGINES)), default="local", show_default=True,
    help="Where the work runs: this process (local) or Ray workers (ray).")
workers_option = click.option(
    "--workers", type=click.IntRange(1), default=None,
    help="Ray workers (default 2).")
address_option = click.option(
    "--ray-address", envvar="RAY_ADDRESS", default=None,
    help="Ray cluster to join (ray://HOST:10001 or HOST:6379; env RAY_ADDRESS); default: a local cluster.")


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--engine``, ``--workers`` and ``--ray-address`` to a command."""
    for option in (address_option, workers_option, engine_option):
        command = option(command)
    return command


@contextmanager
def open_engine(engine: str, payload: Payload, workers: int | None, address: str | None) -> Iterator[BatchEngine]:
    """The chosen engine over ``payload``, closed on exit; workers that cannot start or are
    lost (``BatchError``, a Ray that cannot be reached) are a one-line error."""
    cls = engine_class(engine)
    try:
        with cls(payload, workers=workers or cls.default_workers, address=address) as runner:
            yield runner
    except (BatchError, ConnectionError) as exc:
        raise click.ClickException(str(exc)) from exc


#: The models ``kgrec train --engine ray`` trains on Ray; the others are fitted in this process.
RAY_TRAINED = ("kge",)


def train_engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--engine/--workers/--ray-address`` on ``kgrec train``, turned into ``--set kge.engine=…``
    and ``kge.workers=…`` (and ``RAY_ADDRESS``) before the command runs."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        engine, workers, address = kwargs.pop("engine"), kwargs.pop("workers"), kwargs.pop("ray_address")
        if engine == "local":
            if workers not in (None, 1):
                raise click.UsageError("--workers needs --engine ray (local training runs in one process)")
            return command(*args, **kwargs)
        names = [m.strip() for m in str(kwargs.get("models", "")).split(",")]
        ray_models = [n for n in names if n in RAY_TRAINED]
        if not ray_models:
            raise click.UsageError(f"--engine ray trains {', '.join(RAY_TRAINED)} data-parallel; --models has none "
                                   "of them (the other recommenders fit in one process)")
        if address:
            os.environ["RAY_ADDRESS"] = address
        n = workers or engine_class(engine).default_workers
        kwargs["settings"] = (*kwargs.get("settings", ()),
                              *(f"{m}.{key}={json.dumps(value)}" for m in ray_models
                                for key, value in (("engine", engine), ("workers", n))))
        others = [m for m in names if m not in RAY_TRAINED]
        if others:
            click.echo(f"--engine ray: {', '.join(ray_models)} on {n} Ray workers; {', '.join(others)} in this "
                       "process", err=True)
        return command(*args, **kwargs)

    for option in (address_option, workers_option, engine_option):
        wrapper = option(wrapper)
    return wrapper
