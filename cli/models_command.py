"""``kgrec models``: every registered recommender, what it can do, and its options."""

from __future__ import annotations

import dataclasses
import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per model.")
def models(as_json: bool) -> None:
    """List the recommenders: default training and hybrid membership, abilities and options."""
    from kgrec.recommenders.base import (
        FoldsInHistory,
        PredictsRatings,
        ScoresAllItems,
        ScoresProfiles,
        SimilarItems,
        StartsWarm,
        Tunable,
    )
    from kgrec.recommenders.registry import default_models, hybrid_components, registry

    defaults, parts = default_models(), hybrid_components()
    abilities = {"scores all items": ScoresAllItems, "folds in feedback": FoldsInHistory,
                 "predicts ratings": PredictsRatings, "similar items": SimilarItems, "tuned": Tunable,
                 "scores profiles": ScoresProfiles, "starts warm": StartsWarm}
    order = {n: i for i, n in enumerate(defaults)}
    for name, cls in sorted(registry().items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        config = cls.Config()
        has = [a for a, kind in abilities.items() if issubclass(cls, kind)]
        options = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
        choices = {f.name: list(c) for f in dataclasses.fields(config) if (c := config.choices(f.name))}
        row = {"name": name, "default": name in defaults, "hybrid_component": name in parts,
               "abilities": has, "options": options, "choices": choices}
        if as_json:
            click.echo(json.dumps(row))
            continue
        roles = [r for r, on in (("default", row["default"]), ("in hybrid", row["hybrid_component"])) if on]
        click.echo(f"{name:<12} {', '.join(roles + has)}")
        click.echo("  " + ", ".join(f"{k}={v}" + (f" ({'|'.join(map(str, choices[k]))})" if k in choices
                                                  else "") for k, v in options.items()))


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return dict(value) if isinstance(value, dict) else value
