"""``kgrec recommend``: recommendations (and their reasons) from a trained bundle.

The same read path as the API (``recommenders.serving``): the same bundle, store and query
give the same items, order, sources and reasons. With ``--store`` (or ``KGREC_STORE``) what
was written after the bundle counts too: new interactions, dislikes, hidden items. One user
prints a readable list; ``--users FILE`` (one id per line) or ``--all-users`` (every user of
the bundle, in the snapshot's order) writes CSV (``user,item,rank,score,source``) or JSON lines
(each line the API's response body). Batches run on an engine (``recommenders.batch``): in this
process, or with ``--engine ray --workers N`` on Ray workers — the same bytes in the same order.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import click

from kgrec.cli.engine_options import engine_options, open_engine
from kgrec.cli.impression_batch import logged_batch
from kgrec.cli.output_file import whole_file


def read_users(path: Path) -> list[str]:
    """User ids, one per line; blank lines are skipped, surrounding spaces stripped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _ids(values: tuple[str, ...]) -> frozenset[str]:
    """Repeatable options that may also hold comma-separated ids (``--tags rock,jazz``)."""
    return frozenset(x.strip() for v in values for x in v.split(",") if x.strip())


@click.command()
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle written by `kgrec train`.")
@click.option("--store", "store_url", default=lambda: os.environ.get("KGREC_STORE"),
              help="Also honour what was written after the bundle (interactions, dislikes, hidden items) "
                   "[default: $KGREC_STORE, else the bundle alone].")
@click.option("--user", "user_id", help="One user id.")
@click.option("--users", "users_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A file of user ids, one per line (batch mode).")
@click.option("--all-users", is_flag=True, help="Every user of the bundle, in the snapshot's order (batch mode).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many items per user.")
@click.option("--model", help="Serve this model first (then the bundle's fallback chain), as the API's ?model=.")
@click.option("--explain", is_flag=True, help="Add each item's reasons (paths, contributions, Cypher).")
@click.option("--exclude", multiple=True, help="Item ids never to recommend (repeatable, or comma-separated).")
@click.option("--exclude-item", "exclude_item", multiple=True, help="One item id, taken whole (it may hold a comma).")
@click.option("--tags", multiple=True, help="Only items carrying at least one of these tag ids (comma-separated).")
@click.option("--tag", "tag", multiple=True, help="One tag id for --tags, taken whole (repeatable).")
@click.option("--not-tags", "not_tags", multiple=True, help="Only items carrying none of these tag ids.")
@click.option("--not-tag", "not_tag", multiple=True, help="One tag id for --not-tags, taken whole (repeatable).")
@click.option("--near", metavar="LAT,LON", help="Only items within --radius-km of this point (WGS-84 degrees).")
@click.option("--radius-km", "radius_km", metavar="KM", help="The radius for --near, in kilometres.")
@click.option("--at", metavar="LAT,LON",
              help="The user is here now: the location model measures distance from this point instead of "
                   "from the user's usual places.")
@click.option("--q", "q", metavar="WORDS",
              help="What the user is looking for now, as the API's ?q=: only items whose title, tags or attributes "
                   "hold one of the words, re-ranked towards them and blended with the user's taste (at most 200 "
                   "characters).")
@click.option("--policy", type=click.Choice(["greedy", "learn", "explore"]), default=None,
              help="Serving policy, as the API's ?policy=: greedy (today's top k), learn (also hides what the user "
                   "was shown and skipped) or explore (learn, with exploration and propensities) [default: learn].")
@click.option("--log-impressions", "log_impressions", is_flag=True,
              help="Log each served list's impressions in --store, as the API does (off for batches by default; "
                   "local engine only).")
@click.option("--max-reasons", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Reasons shown per item (the API's KGREC_MAX_REASONS).")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "jsonl"]), default=None,
              help="Output format (default: text for --user, csv for --users and --all-users).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@engine_options
def recommend(bundle_dir: Path, store_url: str | None, user_id: str | None, users_file: Path | None,
              all_users: bool, k: int, model: str | None, explain: bool, exclude: tuple[str, ...],
              exclude_item: tuple[str, ...], tags: tuple[str, ...], tag: tuple[str, ...], not_tags: tuple[str, ...],
              not_tag: tuple[str, ...], near: str | None, radius_km: str | None, at: str | None, max_reasons: int,
              fmt: str | None, output: Path | None, engine: str, workers: int | None, ray_address: str | None,
              policy: str | None = None, log_impressions: bool = False, q: str | None = None) -> None:
    """Recommend items for one user (--user) or many (--users FILE, --all-users)."""
    from kgrec.recommenders.batch.batch_tasks import RecommendOptions, recommend_block
    from kgrec.recommenders.batch.engines import Payload
    from kgrec.recommenders.serving.query import Query
    from kgrec.recommenders.serving.server_loading import BundleLoadError, load_server

    if sum((user_id is not None, users_file is not None, all_users)) != 1:
        raise click.UsageError("give exactly one of --user, --users or --all-users")
    fmt = fmt or ("text" if user_id is not None else "csv")
    if fmt == "csv" and explain:
        raise click.UsageError("--explain needs --format jsonl or text (the CSV columns are fixed)")
    if log_impressions and (not store_url or engine != "local"):
        raise click.UsageError("--log-impressions needs --store (where impressions go) and the local engine")
    geo = _geo_options(near, radius_km, at)
    query_text = _query_text(q)
    try:
        server = load_server(bundle_dir, max_reasons=max_reasons)
        server.order(model)
    except BundleLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # no such --model, or a bundle without models
        raise click.ClickException(f"cannot load bundle {bundle_dir}: {exc}") from exc
    users = ([user_id] if user_id is not None else read_users(users_file) if users_file is not None
             else list(server.snapshot.users.ids))
    if output is not None and server.seal is not None:  # stdout is free: say which bundle, byte for byte, serves
        click.echo(f"kgrec: bundle {bundle_dir}: {server.seal.describe()}", err=True)
    options = RecommendOptions(Query("", k, model, _ids(exclude) | frozenset(exclude_item),
                                     _ids(tags) | frozenset(tag), _ids(not_tags) | frozenset(not_tag), explain,
                                     **geo, policy=policy, q=query_text))
    payload = Payload(load=partial(load_server, max_reasons=max_reasons), directory=bundle_dir, loaded=server,
                      verified=server.seal)
    with (_state_reader(server, store_url) as state, whole_file(output) as out,
          open_engine(engine, payload, workers, ray_address) as runner):
        writers: dict[str, Callable[..., Callable[..., None]]] = {
            "text": _text, "csv": _csv, "jsonl": partial(_jsonl, policy=policy or server.default_policy)}
        writer = writers[fmt](out, server, model, explain)
        if log_impressions:
            assert state is not None and store_url is not None  # checked above
            logged_batch(server, options.query, users, state, store_url, writer)
        else:
            for u, (served, known) in runner.run(recommend_block, options, users, desc="recommend", state=state):
                writer(u, served, known)
    if output:
        click.echo(f"wrote {len(users)} users to {output}", err=True)


def _geo_options(near: str | None, radius_km: str | None, at: str | None) -> dict[str, Any]:
    """``--near``/``--radius-km``/``--at`` as the read path's query fields (the API's ``near``,
    ``radius_km`` and ``at``, checked by the same code); a bad value is a usage error naming the option."""
    from kgrec.recommenders.serving.geo_query import GeoParameterError, check_near, parse_point, parse_radius

    options = {"near": "--near", "radius_km": "--radius-km", "at": "--at"}
    try:
        point = parse_point(near, "near") if near is not None else None
        km = parse_radius(radius_km) if radius_km is not None else None
        check_near(point, km)
        return {"near": point, "radius_km": km, "at": parse_point(at, "at") if at is not None else None}
    except GeoParameterError as exc:
        message = str(exc).split(": ", 1)[-1].replace("radius_km", "--radius-km").replace("near=LAT,LON", "--near")
        raise click.BadParameter(message, param_hint=options[exc.parameter]) from None


def _query_text(raw: str | None) -> str | None:
    """``--q`` checked by the read path's rule (the API's ``q``): a bad one is a usage error naming it."""
    from kgrec.recommenders.serving.text_query import QueryTextError, parse_q

    if raw is None:
        return None
    try:
        return parse_q(raw)
    except QueryTextError as exc:
        raise click.BadParameter(str(exc).replace("q ", "--q ", 1) if str(exc).startswith("q ") else str(exc),
                                 param_hint="--q") from None


@contextmanager
def _state_reader(server: Any, store_url: str | None) -> Iterator[Callable[[str], Any] | None]:
    """What the store knows beyond the bundle, per user (the API's ``LiveState``), or None: the
    bundle alone. Read in this process, also for a batch on Ray (workers never see the store)."""
    from kgrec.graph.store_errors import StoreError
    from kgrec.graph.store_factory import open_store
    from kgrec.recommenders.serving.live_state import LiveState

    if not store_url:
        yield None
        return
    try:
        store = open_store(store_url)
    except StoreError as exc:
        raise click.ClickException(f"cannot open store {store_url}: {exc}") from exc
    live = LiveState(server, lambda fn: fn(store), max_users=1)

    def state(user: str) -> Any:
        got = live.state(user)
        if got.stale:
            raise click.ClickException(f"store {store_url} became unreachable")
        return got.state

    try:
        yield state
    finally:
        store.close()


def _csv(out: IO[str], server: Any, model: str | None, explain: bool) -> Callable[..., None]:
    w = csv.writer(out)
    w.writerow(["user", "item", "rank", "score", "source"])

    def write(user: str, served: list, known: bool) -> None:
        for s in served:
            w.writerow([user, s.item, s.rank, f"{s.score:.6g}", s.source])

    return write


def _jsonl(out: IO[str], server: Any, model: str | None, explain: bool, policy: str = "learn") -> Callable[..., None]:
    """Each line is exactly what ``GET /v1/users/{id}/recommendations`` answers."""

    def write(user: str, served: list, known: bool) -> None:
        body = {"user": user, "model": model or server.default_model, "known_user": known, "policy": policy,
                "recommendations": [s.to_dict() for s in served]}
        out.write(json.dumps(body, ensure_ascii=False) + "\n")

    return write


def _text(out: IO[str], server: Any, model: str | None, explain: bool) -> Callable[..., None]:
    def write(user: str, served: list, known: bool) -> None:
        note = "" if known else " (unknown to the graph: fallback recommendations)"
        out.write(f"{user}{note}\n")
        for s in served:
            out.write(f"  {s.rank:>2}. {s.title or s.item} [{s.item}]  score {s.score:.4g}  from {s.source}\n")
            if not explain or not s.reasons:
                continue
            for reason in s.reasons[:3]:
                out.write(f"        {reason.contribution:+.3g}  {reason.text}\n")
            more = s.reasons_omitted + max(0, len(s.reasons) - 3)
            if more > 0:
                out.write(f"        … and {more} more paths\n")
            out.write(f"        replay: {s.reasons[0].cypher}  {json.dumps(s.reasons[0].params)}\n")

    return write
