"""``kgrec load csv|lastfm-2k|movielens|gowalla|synthetic``: parse, validate, report rejects, write.

Every file is parsed and validated before the store is opened, so ``--strict`` can refuse a
load with rejects having written nothing, and a store that is down costs no parsing twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kgrec.cli.options import store_option
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store import LOAD_MODES
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store
from kgrec.loaders.checked_tables import Loaded

VARIANTS = ("100k", "1m", "latest-small")


def load_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every ``load`` subcommand shares."""

    options = (
        store_option,
        click.option("--strict", is_flag=True, help="Refuse the whole load (write nothing) if any row is rejected."),
        click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Reject report (CSV). Default: rejects-<dataset>.csv in the store folder (or here)."),
        click.option("--replace", is_flag=True, help="Empty the store before loading."),
        click.option("--mode", type=click.Choice(LOAD_MODES), default="auto", show_default=True,
                     help="create: only into an empty store, by its fastest path (Neo4j: CREATE, no MERGE); "
                          "merge: upsert into what is there; auto: create when the store is empty, else merge."),
        click.option("--no-progress", is_flag=True, help="No progress bars."),
    )
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def load() -> None:
    """Load a dataset into the graph store (validated; bad rows go to a reject report)."""


@load.command("csv")
@click.option("--path", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with interactions.csv and optional items/users/tags/item_tags/taggings/social.csv.")
@click.option("--symmetric", is_flag=True, help="Add the reverse of every social.csv edge.")
@load_options
def load_csv(path: Path, symmetric: bool, **opts: Any) -> None:
    """Load a folder of CSV files (see README: CSV format)."""
    from kgrec.loaders import csv_dir

    _run(lambda progress: csv_dir.load(path, symmetric=symmetric, progress=progress), **opts)


@load.command("lastfm-2k")
@click.option("--path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with the HetRec files; without it the official zip is downloaded and cached.")
@click.option("--url", help="Download from this mirror instead of GroupLens.")
@click.option("--sha256", help="Expected SHA-256 of the mirror's zip.")
@load_options
def load_lastfm(path: Path | None, url: str | None, sha256: str | None, **opts: Any) -> None:
    """Load HetRec 2011 Last.fm 2K (artists, plays, tags, friendships)."""
    from kgrec.loaders import lastfm

    folder = path or _download("lastfm-2k", url, sha256, not opts["no_progress"])
    _run(lambda progress: lastfm.load(folder, progress=progress), **opts)


@load.command("movielens")
@click.option("--path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of a MovieLens release; the layout is detected from its files.")
@click.option("--variant", type=click.Choice(VARIANTS),
              help="Which release to download without --path (default latest-small); checked against --path.")
@click.option("--url", help="Download from this mirror instead of GroupLens.")
@click.option("--sha256", help="Expected SHA-256 of the mirror's zip.")
@load_options
def load_movielens(path: Path | None, variant: str | None, url: str | None, sha256: str | None, **opts: Any) -> None:
    """Load MovieLens 100K, 1M or latest-small (ratings, genres, user attributes, tags)."""
    from kgrec.loaders import movielens

    if path is not None:
        found = movielens.detect(path)
        if found is None:
            raise click.BadParameter(f"{path} holds none of {', '.join(movielens.LAYOUTS.values())}",
                                     param_hint="'--path'")
        if variant is not None and variant != found:
            raise click.BadParameter(f"{path} is MovieLens {found}, not {variant}", param_hint="'--variant'")
        folder = path
    else:
        folder = _download(f"movielens-{variant or 'latest-small'}", url, sha256, not opts["no_progress"])
    _run(lambda progress: movielens.load(folder, progress=progress), **opts)


@load.command("gowalla")
@click.option("--path", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with *_checkins.txt and optional *_poi_coos.txt, *_social_relations.txt, "
                   "*_poi_categories.txt (tab-separated, no header).")
@click.option("--ts-offset", type=int, default=28_800, show_default=True,
              help="Seconds added to every check-in time for true UTC (gowalla-u1000's stamps are 8 h early; "
                   "see its SOURCE.md). 0 for stamps already in UTC.")
@load_options
def load_gowalla(path: Path, ts_offset: int, **opts: Any) -> None:
    """Load check-ins in the Gowalla/LBSN layout: places with coordinates, one INTERACTED per
    (user, place) weighted by check-ins, friendships among the loaded users, categories as tags."""
    from kgrec.loaders import gowalla

    _run(lambda progress: gowalla.load(path, ts_offset=ts_offset, progress=progress), **opts)


@load.command("synthetic")
@click.option("--users", type=click.IntRange(min=2), default=300, show_default=True)
@click.option("--items", type=click.IntRange(min=2), default=500, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@load_options
def load_synthetic(users: int, items: int, seed: int, **opts: Any) -> None:
    """Generate a graph with planted communities (what the demo and tests use)."""
    from kgrec.loaders.checked_tables import LoadReport
    from kgrec.loaders.synthetic import generate

    def parse(progress: bool) -> Loaded:
        graph = generate(users=users, items=items, seed=seed)
        return Loaded(graph.records, LoadReport(f"synthetic-{users}x{items}-seed{seed}"))

    _run(parse, **opts)


def _download(name: str, url: str | None, sha256: str | None, progress: bool) -> Path:
    from kgrec.loaders.download import DownloadError, fetch

    if sha256 is not None and url is None:
        raise click.BadParameter("--sha256 needs --url (the official zips have pinned digests)",
                                 param_hint="'--sha256'")
    try:
        return fetch(name, url=url, sha256=sha256, progress=progress)
    except DownloadError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(parse: Callable[[bool], Loaded], **opts: Any) -> None:
    """``_load`` with the cyclic garbage collector paused throughout (``graph.bulk.paused_gc``): it
    resumes once the records and the store are released, so it never scans them."""
    from kgrec.graph.bulk import paused_gc

    with paused_gc():
        _load(parse, **opts)


def _load(
    parse: Callable[[bool], Loaded],
    *,
    store_url: str,
    strict: bool,
    rejects_path: Path | None,
    replace: bool,
    mode: str,
    no_progress: bool,
) -> None:
    """Parse, report, then (unless strict with rejects) write and print the counts."""
    from kgrec.loaders.csv_dir import CsvFormatError
    from kgrec.loaders.gowalla import LayoutError
    from kgrec.loaders.ingest import write_records

    started = time.perf_counter()
    try:
        loaded = parse(not no_progress)
    except (FileNotFoundError, CsvFormatError, LayoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = loaded.report
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for line in report.summary_lines():
        click.echo(line, err=True)
    if report.rejects:
        target = rejects_path or _default_rejects_path(store_url, report.dataset)
        click.echo(f"reject report: {report.write_rejects(target)}", err=True)
    if strict and report.rejects:
        raise click.ClickException(f"--strict: {len(report.rejects):,} rows rejected; nothing was written")
    try:
        checked = loaded.checked()  # what the files gave was checked as it was read; the rest now, once
        with open_store(store_url) as store:
            if replace:
                store.clear()
            chosen = store.load_mode(mode)
            written = write_records(store, checked, progress=not no_progress, mode=chosen)
            counts = store.counts()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    elapsed = time.perf_counter() - started
    click.echo(f"loaded {report.dataset} into {store_url} in {chosen} mode in {elapsed:.1f} s")
    width = max(len(k) for k in COUNT_KEYS)
    click.echo(f"{'':<{width}}  {'written':>10}  {'in store':>10}")
    for k in COUNT_KEYS:
        click.echo(f"{k:<{width}}  {written[k]:>10,}  {counts[k]:>10,}")


def _default_rejects_path(store_url: str, dataset: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset).strip("-") or "dataset"
    folder = Path(store_url[len("memory://") :]) if store_url.startswith("memory://") else Path.cwd()
    return folder / f"rejects-{safe}.csv"
