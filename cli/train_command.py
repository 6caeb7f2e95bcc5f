"""``kgrec train``: tune and fit recommenders on a snapshot of the graph and write a model bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kgrec.cli.engine_options import train_engine_options
from kgrec.cli.kge_options import kge_options
from kgrec.cli.options import store_option
from kgrec.cli.warm_options import WarmOptions, describe, open_warm, warm_options
from kgrec.recommenders.tuning.trial_cost import DEFAULT_BUDGET_S


def parse_settings(settings: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``name.option=value`` pairs (values as JSON where they parse, else strings)."""
    out: dict[str, dict[str, Any]] = {}
    for s in settings:
        key, eq, raw = s.partition("=")
        name, dot, option = key.partition(".")
        if not eq or not dot or not name or not option:
            raise click.BadParameter(f"{s!r} is not MODEL.OPTION=VALUE", param_hint="--set")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name, {})[option] = value
    return out


def check_settings(configs: dict[str, dict[str, Any]]) -> None:
    """Build every model's Config from ``--set`` before the graph is read, so a bad value is a
    usage error naming the option, not a failure minutes into training."""
    from kgrec.recommenders.registry import get

    for name, values in configs.items():
        try:
            get(name).Config.build(**values)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--set") from None


@click.command()
@store_option
@click.option("--models", default=None, metavar="NAMES",
              help="Comma-separated recommenders, in fallback order; popularity is always added last "
                   "(default: every model marked as a default, best first; `kgrec models` lists them).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/bundle"),
              show_default=True, help="Bundle directory to write.")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of every model.")
@click.option("--set", "settings", multiple=True, metavar="MODEL.OPTION=VALUE",
              help="Override a model option, e.g. --set graph_walk.beta=0.4 (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--tune/--no-tune", "tune_models", default=True, show_default=True,
              help="Choose each recommender's options on a validation cut of this graph first (optuna); "
                   "--no-tune keeps the shipped defaults.")
@click.option("--tune-budget", type=click.FloatRange(min=0), default=DEFAULT_BUDGET_S, show_default=True,
              metavar="SECONDS", help="Time for tuning, turned into trial counts from the graph's size "
                                      "(so the same seed makes the same choice).")
@click.option("--tune-kge", is_flag=True, help="Tune kge too (each trial trains embeddings: minutes).")
@kge_options
@warm_options
@train_engine_options
def train(store_url: str, models: str | None, out_dir: Path, seed: int, settings: tuple[str, ...], force: bool,
          tune_models: bool, tune_budget: float, tune_kge: bool, warm: WarmOptions | None = None) -> None:
    """Tune and fit recommenders on the graph and write a versioned bundle (JSON + npz, no pickle)."""
    from kgrec.graph.store_errors import StoreError
    from kgrec.graph.store_factory import open_store
    from kgrec.recommenders.bundle.model_bundle import save_bundle
    from kgrec.recommenders.registry import default_models, registry
    from kgrec.recommenders.tuning.training import train_models
    from kgrec.recommenders.tuning.tuner import table

    known = registry()
    names = [m.strip() for m in models.split(",") if m.strip()] if models is not None else list(default_models())
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise click.BadParameter(f"unknown recommender(s) {unknown}; registered: {', '.join(sorted(known))}",
                                 param_hint="--models")
    configs = parse_settings(settings)
    stray = set(configs) - set(names) - {"popularity"}
    if stray:
        raise click.BadParameter(f"--set names models not being trained: {sorted(stray)}", param_hint="--set")
    check_settings(configs)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise click.ClickException(f"{out_dir} exists and is not empty; pass --force to replace it")
    warm_start = open_warm(warm) if warm is not None else None
    try:
        with open_store(store_url, existing=True) as store:
            snapshot = store.snapshot()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if snapshot.interactions.nnz == 0:
        raise click.ClickException(f"the graph at {store_url} has no interactions to learn from; load data first")
    click.echo(f"snapshot {snapshot.fingerprint}: " + ", ".join(f"{k} {v:,}" for k, v in snapshot.counts.items()),
               err=True)
    if models is None:  # the defaults that have something to learn from this graph
        skipped = [n for n in names if not known[n].applies_to(snapshot)]
        names = [n for n in names if n not in skipped]
        if skipped:
            click.echo(f"  not trained (nothing to learn from this graph): {', '.join(skipped)}", err=True)
    try:
        trained = train_models(snapshot, names, seed=seed, settings=configs, tune_models=tune_models,
                               budget_s=tune_budget, tune_kge=tune_kge,
                               progress=lambda line: click.echo(f"  {line}", err=True),
                               fitted_progress=lambda n, s: click.echo(f"  fitted {n:<12} {s:7.2f} s", err=True),
                               warm=warm_start)
        path = save_bundle(out_dir, snapshot, trained.models, seed=seed, overwrite=force, extra=trained.manifest)
    except (ValueError, OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if trained.tuning is not None:
        click.echo(f"tuning on {trained.tuning.users} validation users ({trained.tuning.seconds:.0f} s, "
                   f"budget {trained.tuning.budget_s:.0f} s); validation NDCG@10:")
        click.echo(table(trained.tuning))
    if "warm_start" in trained.manifest:
        click.echo("\n".join(describe(trained.manifest["warm_start"])))
    for name in trained.models:
        entry = trained.manifest.get(name)
        if isinstance(entry, dict) and entry.get("reason"):
            click.echo(f"{name}: {entry['reason']}")
    click.echo(f"wrote bundle {path} ({', '.join(trained.models)})")
