"""Write a benchmark's text under its ``<!-- section:NAME -->`` marker in RESULTS.md.

Everything between the marker and the next ``<!-- section:`` marker (or the end) is
replaced, so reruns replace their own section and never touch the others'.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    marker = f"<!-- section:{name} -->"
    content = path.read_text(encoding="utf-8")
    if marker not in content:
        raise ValueError(f"{path} has no {marker} marker")
    start = content.index(marker) + len(marker)
    nxt = re.search(r"<!-- section:", content[start:])
    end = start + nxt.start() if nxt else len(content)
    path.write_text(content[:start] + "\n\n" + text.strip() + "\n\n" + content[end:].lstrip("\n"), encoding="utf-8")
