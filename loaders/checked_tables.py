"""Row validation and the reject report shared by every file loader.

Files are read as bytes and decoded line by line, so one undecodable line is rejected on its
own and the rest of the file still loads. Every bad row becomes a ``Reject`` (file, line,
reason) in a ``LoadReport``; the loaders keep the good rows, and ``--strict`` refuses the
whole load before anything is written when the report holds any reject.

The stores' value rules (``graph.values``) are applied once per file, column-wise, by the
report's ``Vetted`` (``graph.bulk``), which holds the records that passed: ``Loaded.checked()``
then checks only what the loader added itself (undeclared items, aggregated tags, attribute
nodes...), so each row is checked exactly once before the stores take it as checked.
"""

from __future__ import annotations

import codecs
import csv
import math
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kgrec.graph.bulk import CheckedRecords, Vetted, check_records, paused_gc
from kgrec.graph.records import GraphRecords
from kgrec.graph.user_attributes import add_attribute_records
from kgrec.graph.values import location_problem

T = TypeVar("T")

#: Codecs in which a newline is the byte 0x0A and no other character contains it: a file of them
#: that decodes whole has the same lines as decoding it line by line.
_ONE_BYTE_NEWLINE = frozenset({"utf-8", "iso8859-1", "ascii", "cp1252"})

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
    "coordinates": "lat/lon not a pair of WGS-84 degrees (one without the other, not a number, out of range)",
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
    #: The records that passed the value checks (see the module docstring).
    vetted: Vetted = field(default_factory=Vetted, repr=False, compare=False)

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

    def checked(self) -> CheckedRecords:
        """The records as rows the stores write without checking again: what the files gave was
        checked as it was read, the rest is checked here (``StoreError`` on a bad row)."""
        return check_records(self.records, self.report.vetted)


def add_user_attributes(recs: GraphRecords, report: LoadReport, source: str) -> None:
    """Attribute nodes and HAS_ATTRIBUTE links from the users' attributes (``graph.user_attributes``),
    with a note saying what became of each column."""
    if not any(u.attrs for u in recs.users):
        return
    rules = add_attribute_records(recs)
    report.notes.append(f"{source}: {len(recs.attributes):,} attribute nodes, {len(recs.has_attribute):,} links"
                        + "".join(f"; {x}" for x in rules.describe(k for u in recs.users for k in u.attrs)))


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
        data = self.path.read_bytes()
        if not self.report.progress and codecs.lookup(self.encoding).name in _ONE_BYTE_NEWLINE:
            try:  # the whole file at once: the same lines as decoding line by line, for these codecs
                text = data.decode(self.encoding)
            except UnicodeDecodeError:
                pass
            else:
                yield from self._text_lines(text)
                return
        raw_lines = data.split(b"\n")
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

    def _text_lines(self, text: str) -> Iterator[tuple[int, list[str]]]:
        """``lines()`` of a file that decoded whole."""
        texts = text.split("\n")
        if texts and texts[-1] == "":
            texts.pop()
        sep, plain = self.sep, not self.quoted
        for n, line in enumerate(texts, 1):
            if line.endswith("\r"):
                line = line[:-1]
            if n == 1 and self.header:
                self.columns = [c.strip() for c in self._split(line.removeprefix("\ufeff"))]
            elif line.strip():
                yield n, line.split(sep) if plain else self._split(line)

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
        """Parsed records of the good rows; wrong width, parser errors, values no store can hold
        (``value``) and duplicates are rejected, each on its own line.

        ``ncols`` defaults to the header's width. ``key`` names what must be unique in the file;
        a rejected row claims no key. The values of the whole file are checked at once,
        column-wise, once every line is parsed; the report lists rejects in line order.
        """
        report, start = self.report, len(self.report.rejects)
        parsed: list[T] = []
        numbers: list[int] = []
        with paused_gc():  # hundreds of thousands of records: see graph.bulk.paused_gc
            for n, fields in self.lines():
                width = ncols if ncols is not None else len(self.columns or fields)
                if len(fields) != width:
                    report.reject(self.name, n, "columns", f"{len(fields)} fields, expected {width}")
                    continue
                try:
                    parsed.append(parse(fields))
                except RowError as exc:
                    report.reject(self.name, n, exc.reason, exc.detail)
                    continue
                numbers.append(n)
            # the stores' own rules (graph.values), so a load never fails half-way
            problems = report.vetted.vet(parsed)
            later = [Reject(self.name, numbers[i], "value", p) for i, p in problems.items()]
            kept = parsed if not problems else [r for i, r in enumerate(parsed) if i not in problems]
            keys = [] if key is None else list(map(key, kept))
            if len(set(keys)) != len(keys):  # duplicates: the first of each key stays
                lines = numbers if not problems else [n for i, n in enumerate(numbers) if i not in problems]
                seen: dict[Hashable, int] = {}
                unique: list[T] = []
                for n, k, rec in zip(lines, keys, kept, strict=True):
                    first = seen.setdefault(k, n)
                    if first != n:
                        later.append(Reject(self.name, n, "duplicate", f"{k!r} first seen on line {first}"))
                        continue
                    unique.append(rec)
                kept = unique
            if later:  # one reject per line at most: line order is the order they were found in before
                report.rejects[start:] = sorted([*report.rejects[start:], *later], key=lambda r: r.line)
            report.rows[self.name] = len(kept)
        yield from kept


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


def location(lat: str | None, lon: str | None) -> tuple[float, float] | None:
    """None for two missing or empty fields, else a checked (lat, lon) in WGS-84 degrees."""
    given = [(name, v.strip()) for name, v in (("lat", lat), ("lon", lon)) if v is not None and v.strip()]
    if not given:
        return None
    if len(given) == 1:
        name, value = given[0]
        other = "lon" if name == "lat" else "lat"
        raise RowError("coordinates", f"{name} {value!r} without {other}: give both or neither")
    try:
        pair = (float(given[0][1]), float(given[1][1]))
    except ValueError:
        raise RowError("coordinates", f"lat {given[0][1]!r}, lon {given[1][1]!r} are not numbers") from None
    problem = location_problem(pair)
    if problem is not None:
        raise RowError("coordinates", f"location {problem}")
    return pair


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
