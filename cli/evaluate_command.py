"""``kgrec evaluate``: fit recommenders on a leak-free split of the graph and compare them."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kgrec.cli.engine_options import engine_options, open_engine
from kgrec.cli.options import store_option

if TYPE_CHECKING:
    from kgrec.graph.snapshot import GraphSnapshot
    from kgrec.recommenders.base import Recommender
    from kgrec.recommenders.batch.engines import BatchEngine
    from kgrec.recommenders.evaluation.offline_evaluation import ListSource

DEFAULT_MODELS = "popularity,itemcf"


@click.command()
@store_option
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Evaluate on the snapshot stored in a trained bundle instead of reading the store.")
@click.option("--models", default=None,
              help=f"Comma-separated recommenders (default: the bundle's models, else {DEFAULT_MODELS}).")
@click.option("--split", "split_kind", type=click.Choice(["random", "leave-last", "time"]), default="random",
              show_default=True, help="Per-user random holdout, per-user latest interaction, or a global time cut.")
@click.option("--test-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True,
              max_open=True), help="Share held out (random: per user; time: of all interactions).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="List length scored.")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of the split.")
@click.option("--min-interactions", default=5, show_default=True, type=click.IntRange(min=2),
              help="Only users with at least this many interactions are evaluated.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table as markdown.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a PNG bar chart.")
@click.option("--logged", is_flag=True,
              help="Off-policy evaluation instead: estimate how each --bundle model (--models) would have done on "
                   "the impressions logged in --store (replay, IPS, SNIPS, doubly robust; 95% intervals, ESS).")
@click.option("--target-policy", "target_policy", default="learn", show_default=True,
              help="With --logged: the serving policies (greedy, learn, explore; comma-separated) each model is "
                   "estimated under.")
@click.option("--since", type=float, default=None, help="With --logged: impressions from this epoch second on.")
@click.option("--until", type=float, default=None, help="With --logged: impressions before this epoch second.")
@engine_options
def evaluate(
    store_url: str,
    bundle_dir: Path | None,
    models: str | None,
    split_kind: str,
    test_fraction: float,
    k: int,
    seed: int,
    min_interactions: int,
    markdown_path: Path | None,
    json_path: Path | None,
    plot_path: Path | None,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    logged: bool = False,
    target_policy: str = "learn",
    since: float | None = None,
    until: float | None = None,
) -> None:
    """Fit each model on the training part of a split and score its top-k on the held-out part.

    Full ranking: every unseen item competes; training items are excluded. Side data of
    held-out pairs (their taggings) is removed from the training graph. Fitting runs here;
    with --engine ray the test users' lists are computed on Ray workers (same metrics).
    With --logged, estimates each --bundle model's reward on the impressions logged in --store instead.
    """
    if logged:
        from kgrec.cli.evaluate_logged import run_logged

        return run_logged(store_url, bundle_dir, models, target_policy, since, until, json_path, markdown_path, 256)
    from kgrec.recommenders import registry
    from kgrec.recommenders.evaluation.evaluation_report import save_plot, to_json, to_markdown, to_table
    from kgrec.recommenders.evaluation.offline_evaluation import fit_all, score_fitted
    from kgrec.recommenders.evaluation.splits import make_split

    snapshot, bundle_configs = _source(store_url, bundle_dir)
    names = [m.strip() for m in (models or ",".join(bundle_configs) or DEFAULT_MODELS).split(",") if m.strip()]
    try:
        recommenders = {n: registry.create(n, **{**_seed(registry.get(n), seed), **bundle_configs.get(n, {})})
                        for n in names}
        split = make_split(snapshot, split_kind, seed=seed, fraction=test_fraction,
                           min_interactions=min_interactions)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not split.test:
        raise click.ClickException(
            f"no user has {min_interactions} or more interactions to hold out; lower --min-interactions"
        )
    click.echo(f"{split.name} split: {len(split.test):,} users, {split.held_out_pairs():,} held-out pairs", err=True)
    def progress(msg: str) -> None:
        click.echo(msg, err=True)

    fitted = fit_all(split, recommenders, progress)
    with _engine(engine, workers, ray_address, split.train, fitted) as runner:
        result = score_fitted(split, fitted, k=k, progress=progress, top_lists=_top_lists(runner))
    click.echo(to_table(result))
    for path, write in ((markdown_path, to_markdown), (json_path, to_json)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(write(result), encoding="utf-8")
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        save_plot(result, plot_path)


@contextmanager
def _engine(engine: str, workers: int | None, address: str | None, snapshot: GraphSnapshot,
            fitted: dict[str, tuple[Recommender, float]]) -> Iterator[BatchEngine]:
    """A batch engine over the fitted models (packed into a temporary directory when the
    engine ships files to other processes)."""
    from kgrec.recommenders.batch.batch_tasks import load_models, pack_models
    from kgrec.recommenders.batch.engine_choice import engine_class
    from kgrec.recommenders.batch.engines import Payload

    models = {name: model for name, (model, _) in fitted.items()}
    with tempfile.TemporaryDirectory(prefix="kgrec-evaluate-") as tmp:
        directory = pack_models(Path(tmp), snapshot, models) if engine_class(engine).needs_directory else None
        with open_engine(engine, Payload(load=load_models, directory=directory, loaded=models), workers,
                         address) as runner:
            yield runner


def _top_lists(runner: BatchEngine) -> ListSource:
    from kgrec.recommenders.batch.batch_tasks import ModelOptions, ranked_block

    def top(name: str, users: Sequence[str], k: int) -> Iterator[list[str]]:
        return (items for _, items in runner.run(ranked_block, ModelOptions(name, k), users, desc=f"score {name}"))

    return top


def _seed(cls: type, seed: int) -> dict[str, int]:
    """``{"seed": seed}`` for recommenders whose Config has a seed, else nothing."""
    from dataclasses import fields, is_dataclass

    config = getattr(cls, "Config", None)
    has_seed = config is not None and is_dataclass(config) and any(f.name == "seed" for f in fields(config))
    return {"seed": seed} if has_seed else {}


def _config(values: dict[str, Any]) -> dict[str, Any]:
    """A configuration read from JSON: lists back to the tuples frozen configs hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _source(store_url: str, bundle_dir: Path | None) -> tuple[GraphSnapshot, dict[str, dict[str, Any]]]:
    """The graph to split and, from a bundle, each model's configuration (refitted on the
    training part: the bundle's fitted models have seen the held-out pairs)."""
    from kgrec.graph.snapshot import GraphSnapshot
    from kgrec.graph.store_errors import StoreError
    from kgrec.graph.store_factory import open_store

    if bundle_dir is not None:
        manifest_path = bundle_dir / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            snapshot = GraphSnapshot.load(bundle_dir / "snapshot")
            configs = {m["name"]: _config(m.get("config", {})) for m in manifest["models"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"{bundle_dir}: not a readable kgrec bundle ({exc})") from exc
        return snapshot, configs
    try:
        with open_store(store_url, existing=True) as store:
            return store.snapshot(), {}
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
