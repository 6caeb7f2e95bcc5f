"""The checks every impression batch passes before a store writes it (``graph.impressions`` rows,
``graph.rows`` rules): callable outside a store's lock, so that a writer that checked a batch
already (``recommenders.serving.impression_log``) hands it over with ``checked=True``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kgrec.graph.impressions import Impression, check_consistent
from kgrec.graph.rows import check_rows
from kgrec.graph.store_errors import StoreError


def check_impressions(rows: Sequence[Impression]) -> list[tuple[Any, ...]]:
    """The batch's ``impressions`` rows when every one is valid; StoreError naming the first bad one."""
    problem = check_consistent(rows)
    if problem is not None:
        raise StoreError(f"bad {problem}; nothing of this batch was written")
    return check_rows("impressions", [r.row() for r in rows])
