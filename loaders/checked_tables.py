"""Row validation and the reject report shared by every file loader.

Files are read as bytes and decoded line by line, so one undecodable line is rejected on its
own and the rest of the file still loads. Every bad row becomes a ``Reject`` (file, line,
reason) in a ``LoadReport``; the loaders keep the good rows, and ``--strict`` refuses the
whole load before anything is written when the report holds any reject.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kgrec.graph.records import GraphRecords
from kgrec.graph.rows import record_problem

T = TypeVar("T")

#: Reject reason codes and what they mean (the summary and the report use the codes).
REASONS: dict[str, str] = {
    "columns": "wrong column count",
    "decode": "undecodable bytes",
    "empty_id": "empty id",
    "weight": "weight is not a finite number > 0",
    "number": "a numeric field is not a finite number",
    "date": "an impossible date",
    "duplicate": "the same key appeared earlier in the file",
    "self_loop": "a user follows themself",
    "value": "a value no store can hold (control characters, '/' in a user or item id, out of range)",
}


class RowError(ValueError):
    """Raised by a row parser; the row is rejected with ``reason`` (a ``REASONS`` code)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Reject:
    file: str
    line: int
    reason: str
    detail: str


@dataclass
class LoadReport:
    """What a loader rejected, how many rows each file gave, and notes worth telling the user."""

    dataset: str
    rejects: list[Reject] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    progress: bool = False  # show a progress bar per file while reading

    def reject(self, file: str, line: int, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.rejects.append(Reject(file, line, reason, detail))

    def summary(self) -> dict[str, int]:
        """Reject counts per reason code, most frequent first."""
        return dict(Counter(r.reason for r in self.rejects).most_common())

    def summary_lines(self) -> list[str]:
        out = [f"{n:,} rows rejected: {REASONS[code]} ({code})" for code, n in self.summary().items()]
        if not self.rejects:
            out.append("0 rows rejected")
        return out

    def write_rejects(self, path: str | Path) -> Path:
        """Write every reject as CSV (file, line, reason, detail); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "line", "reason", "detail"])
            for r in self.rejects:
                w.writerow([r.file, r.line, r.reason, r.detail])
        return p


@dataclass
class Loaded:
    """A parsed dataset: the records to write and the report of what was left out."""

    records: GraphRecords
    report: LoadReport


@dataclass
class Table:
    """One delimited text file, read as bytes and decoded per line.

    ``sep`` is the field separator (``"\\t"``, ``"::"``, ``"|"``); ``quoted`` means CSV
    quoting rules (fields with the separator inside double quotes), as in MovieLens CSVs.
    """

    path: Path
    report: LoadReport
    sep: str = "\t"
    encoding: str = "utf-8"
    header: bool = True
    quoted: bool = False
    columns: list[str] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def lines(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of every non-empty data line; bad bytes are rejected here."""
        raw_lines = self.path.read_bytes().split(b"\n")
        if raw_lines and raw_lines[-1] == b"":
            raw_lines.pop()
        from tqdm import tqdm

        bar = tqdm(raw_lines, desc=f"read {self.name}", unit=" lines", disable=None if self.report.progress else True,
                   file=sys.stderr, leave=False)
        for n, raw in enumerate(bar, 1):
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                self.report.reject(self.name, n, "decode", f"{self.encoding} cannot decode byte {exc.start}")
                continue
            if n == 1 and self.header:
                self.columns = [c.strip() for c in self._split(text.removeprefix("\ufeff"))]
                continue
            if not text.strip():
                continue
            yield n, self._split(text)

    def _split(self, text: str) -> list[str]:
        if self.quoted and '"' in text:
            return next(csv.reader((text,), delimiter=self.sep))
        return text.split(self.sep)

    def parse(
        self,
        parse: Callable[[list[str]], T],
        key: Callable[[T], Hashable] | None = None,
        ncols: int | None = None,
    ) -> Iterator[T]:
        """Parsed records of the good rows; wrong width, parser errors and duplicates are rejected.

        ``ncols`` defaults to the header's width. ``key`` names what must be unique in the file.
        """
        seen: dict[Hashable, int] = {}
        good = 0
        for n, fields in self.lines():
            width = ncols if ncols is not None else len(self.columns or fields)
            if len(fields) != width:
                self.report.reject(self.name, n, "columns", f"{len(fields)} fields, expected {width}")
                continue
            try:
                rec = parse(fields)
            except RowError as exc:
                self.report.reject(self.name, n, exc.reason, exc.detail)
                continue
            problem = record_problem(rec)
            if problem is not None:  # the stores' own rules (graph.values), so a load never fails half-way
                self.report.reject(self.name, n, "value", problem)
                continue
            if key is not None:
                k = key(rec)
                first = seen.get(k)
                if first is not None:
                    self.report.reject(self.name, n, "duplicate", f"{k!r} first seen on line {first}")
                    continue
                seen[k] = n
            good += 1
            yield rec
        self.report.rows[self.name] = good


# -- field parsers (raise RowError) --------------------------------------------------------


def ident(value: str, what: str) -> str:
    """A non-empty id, surrounding whitespace removed."""
    v = value.strip()
    if not v:
        raise RowError("empty_id", f"empty {what}")
    return v


def weight(value: str, what: str = "weight") -> float:
    """A finite number > 0 (weights and counts)."""
    try:
        w = float(value)
    except ValueError:
        raise RowError("weight", f"{what} {value.strip()!r} is not a number") from None
    if not math.isfinite(w) or w <= 0:
        raise RowError("weight", f"{what} {value.strip()!r} is not a finite number > 0")
    return w


def optional_float(value: str | None, what: str) -> float | None:
    """None for a missing or empty field, else a finite float."""
    if value is None:
        return None
    try:
        x = float(value)
    except ValueError:
        if not value.strip():
            return None
        raise RowError("number", f"{what} {value.strip()!r} is not a number") from None
    if not math.isfinite(x):
        raise RowError("number", f"{what} {value.strip()!r} is not finite")
    return x


def optional_int(value: str | None, what: str) -> int | None:
    """None for a missing or empty field, else an integer (``"12.0"`` is accepted)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    x = optional_float(value, what)
    if x is None:
        return None
    if x != int(x):
        raise RowError("number", f"{what} {value!r} is not an integer")
    return int(x)
