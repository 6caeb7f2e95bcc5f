"""The ``kge`` options of ``kgrec train`` (``--kge-model``, ``--dim``, ``--epochs``, …).

They are shorthands for ``--set kge.OPTION=VALUE``: the decorator turns them into those
settings before the command runs, so ``train`` itself needs no knowledge of them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

#: click parameter name -> KGEConfig field.
FIELDS = {
    "kge_model": "model",
    "dim": "dim",
    "epochs": "epochs",
    "kge_device": "device",
    "kge_loss": "loss",
    "kge_training_loop": "training_loop",
    "kge_negatives": "num_negatives",
    "kge_lr": "learning_rate",
}


def kge_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the kge options to a command that takes ``models`` and ``settings``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {FIELDS[k]: kwargs.pop(k) for k in list(kwargs) if k in FIELDS}
        given = {k: v for k, v in given.items() if v is not None}
        if given:
            names = [m.strip() for m in str(kwargs.get("models", "")).split(",")]
            if "kge" not in names:
                raise click.BadParameter("kge options need `kge` in --models", param_hint="--models")
            kwargs["settings"] = (*kwargs.get("settings", ()),
                                  *(f"kge.{k}={json.dumps(v)}" for k, v in given.items()))
        return command(*args, **kwargs)

    from kgrec.embeddings.pykeen_setup import TRAINING_LOOPS
    from kgrec.embeddings.scoring import MODELS

    options = [
        click.option("--kge-model", type=click.Choice(MODELS), default=None,
                     help="kge: the PyKEEN model (default: the benchmark's best, see README)."),
        click.option("--dim", type=click.IntRange(1), default=None, help="kge: embedding dimension."),
        click.option("--epochs", type=click.IntRange(1), default=None, help="kge: training epochs (upper bound "
                     "when early stopping on the validation cut)."),
        click.option("--kge-device", default=None, help="kge: auto (CUDA when present), cpu, cuda, cuda:N."),
        click.option("--kge-loss", default=None, help="kge: PyKEEN loss, e.g. crossentropy, softplus, nssa."),
        click.option("--kge-training-loop", type=click.Choice(TRAINING_LOOPS), default=None,
                     help="kge: shared (negatives shared by the batch, the default), slcwa (sampled "
                     "negatives per positive) or lcwa (1-vs-all)."),
        click.option("--kge-negatives", type=click.IntRange(1), default=None,
                     help="kge: negatives per batch (shared) or per positive (slcwa)."),
        click.option("--kge-lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="kge: Adam learning rate."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
