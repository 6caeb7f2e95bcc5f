"""Where a command writes its rows: stdout, or a file written whole or not at all."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def whole_file(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or ``path`` through a temporary sibling renamed into place once everything is
    written: a failed run leaves no half file and an older file intact."""
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
