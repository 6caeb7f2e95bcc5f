"""``kgrec recommend``: recommendations (and their reasons) from a trained bundle.

One user prints a readable list; ``--users FILE`` (one id per line) or ``--all-users``
(every user of the bundle, in the snapshot's order) writes CSV (``user,item,rank,score,source``)
or JSON lines for all of them. Users the bundle does not know get the fallback chain and are
never dropped. ``--engine ray --workers N`` scores the users on Ray workers; the output is
the same bytes in the same order (``recommenders.batch``).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from api.cli.engine_options import engine_options, open_engine


def read_users(path: Path) -> list[str]:
    """User ids, one per line; blank lines are skipped, surrounding spaces stripped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


@click.command()
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle written by `kgrec train`.")
@click.option("--user", "user_id", help="One user id.")
@click.option("--users", "users_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A file of user ids, one per line (batch mode).")
@click.option("--all-users", is_flag=True, help="Every user of the bundle, in the snapshot's order (batch mode).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="How many items per user.")
@click.option("--model", help="Serve this model of the bundle (then popularity) instead of the whole chain.")
@click.option("--explain", is_flag=True, help="Add each item's reasons (paths, contributions, Cypher).")
@click.option("--exclude", multiple=True, help="An item id never to recommend (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "jsonl"]), default=None,
              help="Output format (default: text for --user, csv for --users).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@engine_options
def recommend(bundle_dir: Path, user_id: str | None, users_file: Path | None, all_users: bool, k: int,
              model: str | None, explain: bool, exclude: tuple[str, ...], fmt: str | None, output: Path | None,
              engine: str, workers: int | None, ray_address: str | None) -> None:
    """Recommend items for one user (--user) or many (--users FILE, --all-users)."""
    from recommenders.batch import Payload
    from recommenders.batch_tasks import RecommendOptions, recommend_block
    from recommenders.bundle import Bundle

    if sum((user_id is not None, users_file is not None, all_users)) != 1:
        raise click.UsageError("give exactly one of --user, --users or --all-users")
    fmt = fmt or ("text" if user_id is not None else "csv")
    if fmt == "csv" and explain:
        raise click.UsageError("--explain needs --format jsonl or text (the CSV columns are fixed)")
    try:
        bundle = Bundle.load(bundle_dir)
        bundle.chain_for(model)
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"cannot load bundle {bundle_dir}: {exc}") from exc
    users = ([user_id] if user_id is not None else read_users(users_file) if users_file is not None
             else list(bundle.snapshot.users.ids))
    options = RecommendOptions(k=k, model=model, explain=explain, exclude=tuple(exclude))
    payload = Payload(load=Bundle.load, directory=bundle_dir, loaded=bundle)
    with _output(output) as out, open_engine(engine, payload, workers, ray_address) as runner:
        writer = {"text": _text, "csv": _csv, "jsonl": _jsonl}[fmt](out, bundle)
        for u, rows in runner.run(recommend_block, options, users, desc="recommend"):
            writer(u, rows)
    if output:
        click.echo(f"wrote {len(users)} users to {output}", err=True)


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or ``path`` written whole or not at all: a temporary sibling renamed into place
    when every user is written (a failed batch leaves no half file and an old file intact)."""
    if path is None:
        yield sys.stdout
        return
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _csv(out: IO[str], bundle: Any):
    w = csv.writer(out)
    w.writerow(["user", "item", "rank", "score", "source"])

    def write(user: str, rows: list) -> None:
        for rank, r, _ in rows:
            w.writerow([user, r.item_id, rank, f"{r.score:.6g}", r.source])

    return write


def _jsonl(out: IO[str], bundle: Any):
    def write(user: str, rows: list) -> None:
        known = user in bundle.snapshot.users
        items = []
        for rank, r, reasons in rows:
            item = {"item": r.item_id, "rank": rank, "score": r.score, "source": r.source}
            if reasons:
                item["reasons"] = [x.to_dict() for x in reasons]
            items.append(item)
        out.write(json.dumps({"user": user, "known": known, "items": items}, ensure_ascii=False) + "\n")

    return write


def _text(out: IO[str], bundle: Any):
    snap = bundle.snapshot

    def write(user: str, rows: list) -> None:
        known = "" if user in snap.users else " (unknown to the graph: fallback recommendations)"
        out.write(f"{user}{known}\n")
        for rank, r, reasons in rows:
            j = snap.items.get(r.item_id)
            title = snap.title(j) if j is not None else r.item_id
            out.write(f"  {rank:>2}. {title} [{r.item_id}]  score {r.score:.4g}  from {r.source}\n")
            for reason in reasons[:3]:
                out.write(f"        {reason.contribution:+.3g}  {reason.text}\n")
            if reasons:
                more = len(reasons) - 3
                if more > 0:
                    out.write(f"        … and {more} more paths\n")
                out.write(f"        replay: {reasons[0].cypher}  {json.dumps(reasons[0].params)}\n")

    return write
