"""``kgrec demo``: build the synthetic graph in the embedded store and show what it holds.

The demo is a sequence of steps, each a function of one ``DemoRun``; later steps (such as
recommendations for a few users) are added by appending to ``STEPS``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kgrec.cli.options import store_option
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store

if TYPE_CHECKING:
    from kgrec.graph.snapshot import GraphSnapshot
    from kgrec.graph.store import GraphStore
    from kgrec.loaders.synthetic import SyntheticGraph


#: Where the demo trains its bundle unless ``--out`` says otherwise.
DEMO_BUNDLE = "data/bundle"


@dataclass
class DemoRun:
    """What the steps share: the open store, the generated graph and its snapshot."""

    store: GraphStore
    store_url: str
    graph: SyntheticGraph
    bundle_dir: Path = Path(DEMO_BUNDLE)
    sample_users: list[str] = field(default_factory=list)
    snapshot: GraphSnapshot | None = None


def step_build(run: DemoRun) -> None:
    """Write the generated graph into the store."""
    from kgrec.loaders.ingest import write_records

    click.echo(f"== building a synthetic graph in {run.store_url}")
    write_records(run.store, run.graph.records, progress=True)
    run.snapshot = run.store.snapshot()


def step_counts(run: DemoRun) -> None:
    counts = run.store.counts()
    click.echo("== what the graph holds")
    for k in COUNT_KEYS:
        click.echo(f"  {k:<13}{counts[k]:>8,}")
    generated = {k: len(getattr(run.graph.records, k)) for k in COUNT_KEYS}
    if any(counts[k] > generated[k] for k in ("users", "items")):
        click.echo("  (the store also holds other data; `kgrec demo --replace` starts from an empty store)")


def step_users(run: DemoRun) -> None:
    """A few users with their planted community and what they did."""
    snap = run.snapshot
    assert snap is not None
    click.echo("== a few users")
    truth = run.graph.truth
    names = {u.id: u.attrs.get("name", u.id) for u in run.graph.records.users}
    for uid in run.sample_users:
        u = snap.users.index[uid]
        items = snap.user_items(u)
        friends = snap.follows.indices[snap.follows.indptr[u] : snap.follows.indptr[u + 1]]
        top = sorted(items, key=lambda j: -snap.interactions[u, j])[:3]
        click.echo(
            f"  {uid} ({names[uid]}), community {truth.user_community[uid]}: {len(items)} items, "
            f"{len(friends)} friends; e.g. {', '.join(snap.title(int(j)) for j in top)}"
        )


def step_tags(run: DemoRun) -> None:
    """The most used tags (by users) and the biggest genres (by items)."""
    snap = run.snapshot
    assert snap is not None
    used = Counter({snap.tag_names[t]: int(n) for t, n in enumerate(snap.user_tags.sum(axis=0).A1) if n})
    on_items = Counter({snap.tag_names[t]: int(n) for t, n in enumerate((snap.item_tags > 0).sum(axis=0).A1) if n})
    click.echo("== top tags")
    click.echo("  by taggings: " + ", ".join(f"{t} ({n})" for t, n in used.most_common(5)))
    click.echo("  by items:    " + ", ".join(f"{t} ({n})" for t, n in on_items.most_common(5)))


DEMO_MODELS = ("graph_walk", "social", "itemcf", "content")


def step_recommend(run: DemoRun) -> None:
    """Train a bundle on the graph and show three users their recommendations and reasons."""
    from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle
    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.server import Server

    snap = run.snapshot
    assert snap is not None
    click.echo(f"== training {', '.join(DEMO_MODELS)} (+ popularity) into {run.bundle_dir}")
    models = fit_models(snap, DEMO_MODELS, progress=lambda n, s: click.echo(f"  {n:<12}{s:6.2f} s"))
    server = Server.from_bundle(Bundle.load(save_bundle(run.bundle_dir, snap, models, overwrite=True)), max_reasons=2)
    click.echo("== recommendations, with the paths that explain them")
    for uid in run.sample_users:
        click.echo(f"  {uid}:")
        for rec in server.recommend(Query(uid, 3, explain=True)):
            click.echo(f"    {rec.rank}. {rec.title or rec.item}  ({rec.source}, score {rec.score:.3g})")
            for reason in rec.reasons or ():
                click.echo(f"         because {reason.text} ({reason.contribution / rec.score:.0%} of the score)")
    click.echo(f"  try: kgrec recommend --bundle {run.bundle_dir} --user {run.sample_users[0]} --explain")


#: The demo, in order; extend by appending a function of ``DemoRun``.
STEPS: list[Callable[[DemoRun], None]] = [step_build, step_counts, step_users, step_tags, step_recommend]


@click.command()
@store_option
@click.option("--users", type=click.IntRange(min=2), default=300, show_default=True)
@click.option("--items", type=click.IntRange(min=2), default=500, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--replace", is_flag=True, help="Empty the store first.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(DEMO_BUNDLE),
              show_default=True, help="Bundle directory the demo trains into (replaced if there).")
def demo(store_url: str, users: int, items: int, seed: int, replace: bool, out_dir: Path) -> None:
    """Build a synthetic graph (planted communities) in the store and show what it holds."""
    from kgrec.loaders.synthetic import generate

    graph = generate(users=users, items=items, seed=seed)
    picks = [u.id for u in graph.records.users]
    try:
        with open_store(store_url) as store:
            if replace:
                store.clear()
            run = DemoRun(store, store_url, graph, out_dir,
                          sample_users=[picks[0], picks[len(picks) // 2], picks[-1]])
            for step in STEPS:
                step(run)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
