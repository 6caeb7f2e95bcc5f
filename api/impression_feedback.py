"""Feedback that names an impression (``impression_id`` in a row of ``POST /v1/interactions``).

The id must name an impression the store holds (404 otherwise), shown to the row's user and
showing the row's item (422 otherwise); the check runs before anything is written, so a refused
batch changes nothing. An impression may still be in a worker's buffer when its feedback
arrives: this worker's buffer is flushed first, and other workers' (which write every quarter
second) are waited for up to ``WAIT`` seconds before an id counts as unknown.
"""

from __future__ import annotations

import time
from typing import Any

from kgrec.api.blueprints.context import impression_logger, store
from kgrec.api.errors import ApiError, bad_request, not_found
from kgrec.api.params import prefix_for
from kgrec.graph.impressions import Impression, Outcome, as_impression_store, parse_impression_id
from kgrec.graph.records import Dislike, Interaction
from kgrec.graph.store_errors import StoreUnavailable

#: Seconds to wait for an impression another worker has not written yet.
WAIT = 2.0
FIELD = "impression_id"


def take_impression_ids(rows: list[dict[str, Any]], was_list: bool) -> list[str | None]:
    """Remove ``impression_id`` from each row (the rest is an ordinary interaction row) and
    return them, None where a row has none; 400 when one is not a string."""
    out: list[str | None] = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or FIELD not in row:
            out.append(None)
            continue
        value = row.pop(FIELD)
        if value is not None and not isinstance(value, str):
            raise bad_request(f"{prefix_for(n, was_list)}{FIELD}", f"{FIELD} must be a string")
        out.append(value)
    return out


def outcomes_for(rows: list[Interaction | Dislike], ids: list[str | None], was_list: bool) -> list[Outcome]:
    """The outcomes the rows' impression ids record, after checking every one (see the module
    docstring); raises the first problem as an ``ApiError``."""
    named = [(n, r, i) for n, (r, i) in enumerate(zip(rows, ids, strict=True)) if i is not None]
    if not named:
        return []
    found = _find({i for _, _, i in named if parse_impression_id(i) is not None})
    now = time.time()
    out = []
    for n, row, imp_id in named:
        field = f"{prefix_for(n, was_list)}{FIELD}"
        imp = found.get(imp_id)
        if imp is None:
            raise not_found("impression", imp_id, field)
        if imp.user != row.user:
            raise ApiError(422, "impression_mismatch", f"impression {imp_id!r} was not shown to user {row.user!r}",
                           field)
        if imp.item != row.item:
            raise ApiError(422, "impression_mismatch", f"impression {imp_id!r} did not show item {row.item!r}",
                           field)
        out.append(Outcome(imp_id, "disliked" if isinstance(row, Dislike) else "chosen", now))
    return out


def _find(ids: set[str]) -> dict[str, Impression]:
    if not ids:
        return {}
    found = _lookup(ids)
    missing = ids - found.keys()
    if missing:
        logger = impression_logger()
        if logger is not None:
            logger.flush(timeout=WAIT)
        end = time.monotonic() + WAIT
        while True:
            found.update(_lookup(missing))
            missing -= found.keys()
            if not missing or time.monotonic() >= end:
                break
            time.sleep(0.05)
    return found


def _lookup(ids: set[str]) -> dict[str, Impression]:
    try:
        got: dict[str, Impression] = store().call(lambda st: as_impression_store(st).get_impressions(sorted(ids)))
    except StoreUnavailable as exc:
        raise ApiError(503, "store_unavailable",
                       f"the graph store is unavailable; nothing was written ({exc})") from exc
    return got
