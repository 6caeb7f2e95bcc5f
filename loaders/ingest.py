"""Write parsed records into a store in batches, with a progress bar, then flush.

The order is ``GraphStore.load``'s (nodes before the relationships that name them) and every
upsert is keyed, so rerunning an interrupted load ends with the same graph.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from graph.records import COUNT_KEYS, GraphRecords
from graph.store import GraphStore

BATCH = 10_000


def write_records(
    store: GraphStore,
    records: GraphRecords,
    *,
    progress: bool = False,
    batch: int = BATCH,
    timings: dict[str, float] | None = None,
) -> dict[str, int]:
    """Upsert every record kind in batches; returns how many records of each kind were written.

    ``timings``, when given, receives the seconds spent on each kind (and on ``flush``).
    """
    from tqdm import tqdm

    writers: dict[str, Callable[[Sequence[Any]], int]] = {
        "users": store.upsert_users,
        "items": store.upsert_items,
        "tags": store.upsert_tags,
        "interactions": store.upsert_interactions,
        "taggings": store.upsert_taggings,
        "item_tags": store.upsert_item_tags,
        "follows": store.upsert_follows,
        "facts": store.upsert_facts,
    }
    total = sum(len(getattr(records, k)) for k in COUNT_KEYS)
    written = dict.fromkeys(COUNT_KEYS, 0)
    with tqdm(total=total, desc="write", unit=" rec", disable=None if progress else True, file=sys.stderr) as bar:
        for kind in COUNT_KEYS:
            rows = getattr(records, kind)
            bar.set_description(f"write {kind}")
            started = time.perf_counter()
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                writers[kind](chunk)
                written[kind] += len(chunk)
                bar.update(len(chunk))
            if timings is not None:
                timings[kind] = time.perf_counter() - started
        bar.set_description("flush")
        started = time.perf_counter()
        store.flush()
        if timings is not None:
            timings["flush"] = time.perf_counter() - started
    return written
