"""Write parsed records into a store with a progress bar: ``GraphStore.write_graph`` in a mode.

The order is nodes before the relationships that name them and every merge-mode write is keyed,
so rerunning an interrupted load (in merge mode, which ``auto`` picks once the store holds
data) ends with the same graph.
"""

from __future__ import annotations

import sys

from kgrec.graph.bulk import CheckedRecords
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store import WRITE_BATCH, GraphStore

BATCH = WRITE_BATCH


def write_records(
    store: GraphStore,
    records: GraphRecords | CheckedRecords,
    *,
    progress: bool = False,
    batch: int = BATCH,
    timings: dict[str, float] | None = None,
    mode: str = "merge",
) -> dict[str, int]:
    """Write every record kind in ``mode`` (``auto``, ``create`` or ``merge``); returns how many
    records of each kind were written. ``timings``, when given, receives the seconds per kind.
    ``CheckedRecords`` (``Loaded.checked()``) are written without being checked again."""
    from tqdm import tqdm

    total = sum((records.written if isinstance(records, CheckedRecords) else
                 {k: len(getattr(records, k)) for k in COUNT_KEYS}).values())
    with tqdm(total=total, desc="write", unit=" rec", disable=None if progress else True, file=sys.stderr) as bar:
        return store.write_graph(records, mode, batch=batch, progress=bar.update, timings=timings)
