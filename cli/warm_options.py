"""The warm-start options of ``kgrec train`` (``--warm-start OLD_BUNDLE`` and its switches).

The decorator turns them into one ``warm`` argument (``WarmOptions`` or None), so ``train``
only opens the old bundle (``open_warm``), hands it to training and prints what each model did
(``describe``); the guards and the manifest record are ``recommenders.models.warm_fit``'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kgrec.recommenders.base import WarmStart


@dataclass(frozen=True)
class WarmOptions:
    bundle: Path
    across: bool = False
    tag_names: bool = False
    check_cold: bool = False


def warm_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the warm-start options to a command that takes ``warm``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        path = kwargs.pop("warm_start")
        flags = {"across": kwargs.pop("warm_across"), "tag_names": kwargs.pop("warm_tag_names"),
                 "check_cold": kwargs.pop("warm_check")}
        if path is None and any(flags.values()):
            raise click.BadParameter("--warm-across, --warm-tag-names and --warm-check need --warm-start",
                                     param_hint="--warm-start")
        if flags["tag_names"] and not flags["across"]:
            raise click.BadParameter("--warm-tag-names matches tags across graphs: it needs --warm-across",
                                     param_hint="--warm-tag-names")
        kwargs["warm"] = WarmOptions(path, **flags) if path is not None else None
        return command(*args, **kwargs)

    options = [
        click.option("--warm-start", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     metavar="OLD_BUNDLE",
                     help="Start kge, multvae and als from this bundle's fitted models for the users, items and "
                          "relations both graphs share (new ones from their neighbours), keeping its options; each "
                          "trains cold when its shape changed, too much is new, or after 5 warm starts in a row. The "
                          "manifest records it (warm_start)."),
        click.option("--warm-across", is_flag=True,
                     help="The --warm-start bundle is of another graph sharing entities (pre-train there, fine-tune "
                          "here): ids match, no limit on what is new, all the cold epochs may be used."),
        click.option("--warm-tag-names", is_flag=True,
                     help="With --warm-across: tags also match by normalised name (case, punctuation, 'genre:')."),
        click.option("--warm-check", is_flag=True,
                     help="Also fit each warm-started model cold on the validation cut and train cold when warm is "
                          "more than 1 % worse (costs a cold fit)."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def open_warm(options: WarmOptions) -> WarmStart:
    """The old bundle, verified and loaded; a bad one is a ``ClickException`` line."""
    from kgrec.recommenders.bundle.warm_source import open_warm_start

    extra: dict[str, Any] = {"across": options.across, "tag_names": options.tag_names,
                             "check_cold": options.check_cold}
    if options.across:
        extra["epoch_share"] = 1.0
    try:
        return open_warm_start(options.bundle, **extra)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"--warm-start {options.bundle}: {exc}") from exc


def describe(record: Mapping[str, Any]) -> list[str]:
    """One line per model: warm or cold, and why."""
    head = f"warm start from {record.get('from')} (digest {str(record.get('digest'))[:12]}):"
    lines = [head]
    for name, entry in (record.get("models") or {}).items():
        lines.append(f"  {name}: {entry.get('reason', entry.get('decision'))}")
    return lines
