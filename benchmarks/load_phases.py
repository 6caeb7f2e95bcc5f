"""``kgrec load``'s phases — parsing, checking, writing — measured apart, and the command end to end.

Run through ``benchmarks/load.py --phases``; each measurement in its own process, under the code
of this tree or of ``--baseline DIR`` (a checkout laid out as ``DIR/kgrec``, put first on
``PYTHONPATH``), so before and after run the same harness on the same machine:

    deploy/neo4j/with-neo4j .venv/bin/python benchmarks/load.py --phases --baseline /tmp/load-before --write

Sizes: ``1x`` is Last.fm 2K from its files (``kgrec load lastfm-2k``); ``damaged`` is the same
files with bad rows mixed in (bad bytes, wrong widths, NaN/negative/text weights, ``/`` and
control characters in ids, over-long ids, impossible months, self-follows, duplicates), whose
reject reports must be equal byte for byte; ``16x`` is the Last.fm-shaped synthetic graph of
``loaders/synthetic_scale.py`` at 16×, written once as a CSV folder (``kgrec load csv``).

Phases, per size, store and code (write = ``write_graph`` in create mode into an empty store):

- *parse*: the loader, reading the files into records, less the checks inside it;
- *check*: every value check of the load. Column-checked code: the loader's per-file checks
  (``Vetted``) plus ``Loaded.checked()`` (what the loader added itself). Per-row code (the
  baseline): its three passes — each parsed row in the loader, ``bulk.check_records`` and each
  batch again in the store — timed by wrapping those functions (adds about 0.3 µs a row);
- *write*: ``write_graph`` (nodes, relationships, the memory store's compaction), less checks.

Rows: parse = rows the loader kept; check = rows checked (the baseline checks each up to three
times, and counts each time); write = records written. End to end: ``kgrec load`` as a command
into a fresh memory store and into an emptied Neo4j (wall and CPU seconds of the command, the
server's CPU, the load average), then the counts, snapshot fingerprint and reject report, which
must be equal for both codes.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = ("1x", "damaged", "16x")
SCALE_SEED = 42


# -- children --------------------------------------------------------------------------------
def phases_child(size: str, folder: str, url: str) -> dict[str, Any]:
    """Parse, check and write one size by the code on ``sys.path``; runs in its own process."""
    from kgrec.graph import bulk
    from kgrec.graph.store_factory import open_store

    column = hasattr(bulk, "Vetted")
    rows_timer = None if column else _wrap_row_checks()
    load = _loader(size)
    pause = bulk.paused_gc() if column else _nothing()  # as `kgrec load` runs
    with pause:
        load0, cpu0 = _loadavg(), _cpu()
        t0 = time.perf_counter()
        loaded = load(folder)
        parse_s = time.perf_counter() - t0
        if column:
            vetted = loaded.report.vetted
            t1 = time.perf_counter()
            records = loaded.checked()
            check_s, checked_rows = vetted.seconds + time.perf_counter() - t1, vetted.rows + records.rows_checked
            parse_s -= vetted.seconds
        else:
            assert rows_timer is not None
            parse_s -= rows_timer["s"]
            records = loaded.records
        before_write = dict(rows_timer or {})
        with open_store(url) as store:
            store.clear()
            t2 = time.perf_counter()
            written = store.write_graph(records, "create")
            write_s = time.perf_counter() - t2
            if not column:
                assert rows_timer is not None
                check_s, checked_rows = rows_timer["s"], rows_timer["rows"]
                write_s -= rows_timer["s"] - before_write["s"]
            out = {"size": size, "store": url.split(":")[0], "code": "column" if column else "row",
                   "parse_s": parse_s, "parse_rows": sum(loaded.report.rows.values()), "check_s": check_s,
                   "check_rows": checked_rows, "write_s": write_s, "write_rows": sum(written.values()),
                   "cpu_s": _cpu() - cpu0, "load": (load0, _loadavg()), "counts": store.counts(),
                   "rejects": len(loaded.report.rejects), "rss_mb": _rss_mb()}
            store.clear()
    return out


def _wrap_row_checks() -> dict[str, float]:
    """Time the per-row code's checks: the loader's ``record_problem`` per row and ``check_rows``
    per batch in ``graph.bulk`` and in MemoryStore."""
    from kgrec.graph import bulk, memory
    from kgrec.loaders import checked_tables

    acc = {"s": 0.0, "rows": 0.0}

    def timed(fn: Any, rows: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                acc["s"] += time.perf_counter() - started
                acc["rows"] += rows(*args)

        return wrapper

    checked_tables.record_problem = timed(checked_tables.record_problem, lambda _: 1)  # type: ignore[attr-defined]
    bulk.check_rows = timed(bulk.check_rows, lambda _, r: len(r))  # type: ignore[attr-defined]
    memory.check_rows = timed(memory.check_rows, lambda _, r: len(r))  # type: ignore[attr-defined]
    return acc


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _loader(size: str) -> Any:
    from kgrec.loaders import csv_dir, lastfm

    return csv_dir.load if size == "16x" else lastfm.load


def fingerprint_child(url: str, clear: bool) -> dict[str, Any]:
    """Counts and snapshot fingerprint of a store (by this tree's code); Neo4j is emptied after."""
    from kgrec.graph.store_factory import open_store

    with open_store(url) as store:
        out = {"counts": store.counts(), "fingerprint": store.snapshot().fingerprint}
        if clear:
            store.clear()
    return out


def clear_child(url: str) -> dict[str, Any]:
    from kgrec.graph.store_factory import open_store

    with open_store(url) as store:
        store.clear()
    return {}


def write_16x(out: str) -> dict[str, Any]:
    from kgrec.loaders.synthetic_scale import lastfm_like

    graph = lastfm_like(16, seed=SCALE_SEED)
    graph.write_csv(out)
    return graph.counts()


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- the driver -----------------------------------------------------------------------------
def _python(code: Path | None, *args: str, timeout: float = 3600) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code) if code else str(ROOT / "benchmarks")}
    proc = subprocess.run([sys.executable, str(Path(__file__)), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def damage(source: Path, out: Path, seed: int = 20) -> Path:
    """A copy of Last.fm 2K with bad rows put in at seeded places (what the reject reports compare)."""
    out.mkdir(parents=True, exist_ok=True)
    bad: dict[str, list[bytes]] = {
        "user_artists.dat": [b"2\t51\tnan", b"2\t52\t-3", b"2\t53\tabc", b"2/x\t51\t5", b"\t51\t5", b"2\t51",
                             b"2\t51\t7", b"2\ta\x07b\t5", b"2\t" + b"9" * 300 + b"\t5", b"2\t\xff\xfe\t5",
                             b"2\t..\t3", b"2\t54\tinf", b"3\t51\t1e999"],
        "user_taggedartists.dat": [b"2\t52\t13\t1\t13\t2009", b"2\t52\t13\t1\t4\t0", b"2\t52\t1\x012\t1\t4\t2009",
                                   b"2\t52\t13\t1\t4", b"2\t52\t13\t1\t4\t2009\tx", b"2\t5\xc3\x28\t13\t1\t4\t2009"],
        "artists.dat": [b"99991\tBad \x1b title\thttp://x\thttp://p", b"..\tdots\thttp://x\thttp://p",
                        b"99992\tNul\thttp://x\x00y\thttp://p", b"1\tdup\thttp://x\thttp://p"],
        "user_friends.dat": [b"2\t2", b"2\t4/5", b"2\t\xc3"],
        "tags.dat": [b"99993\tc1 \x85 control", b"1\tduplicate tag"],
    }
    rng = random.Random(seed)
    for p in sorted(source.iterdir()):
        data = p.read_bytes()
        if p.name in bad:
            lines = data.split(b"\n")
            for line in bad[p.name]:
                lines.insert(rng.randrange(2, len(lines) - 1), line)
            data = b"\n".join(lines)
        (out / p.name).write_bytes(data)
    return out


def end_to_end(code: Path | None, size: str, folder: Path, url: str, work: Path, server: Any) -> dict[str, Any]:
    """``kgrec load`` as a command into ``url`` (emptied first), timed from outside."""
    rejects = work / f"rejects-{size}-{'before' if code else 'after'}.csv"
    rejects.unlink(missing_ok=True)
    if url.startswith("memory://"):
        shutil.rmtree(url[len("memory://"):], ignore_errors=True)
    else:
        _python(None, "--clear", url)
        _settle(server)
    kind = ["csv"] if size == "16x" else ["lastfm-2k"]
    argv = [sys.executable, "-c", "from kgrec.cli import main; main()", "load", *kind, "--path", str(folder),
            "--store", url, "--no-progress", "--rejects", str(rejects)]
    env = {**os.environ, "PYTHONPATH": str(code) if code else ""}
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, server0, t0 = _loadavg(), _server_cpu(server), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"kgrec load {size} ({'baseline' if code else 'this tree'}) failed:\n{proc.stderr[-3000:]}")
    cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    out: dict[str, Any] = {"size": size, "store": url.split(":")[0], "code": "row" if code else "column",
                           "wall_s": wall, "cpu_s": cpu, "load": (load0, _loadavg()),
                           "server_cpu_s": _server_cpu(server) - server0 if server else None,
                           "rejects": rejects.read_text(encoding="utf-8") if rejects.exists() else "",
                           "stderr": [x for x in proc.stderr.splitlines() if not x.startswith("reject report:")]}
    if size != "16x":
        out.update(_python(None, "--fingerprint", url, "clear" if not url.startswith("memory://") else "keep"))
    elif not url.startswith("memory://"):
        _python(None, "--clear", url)
    return out


def _server(url: str) -> Any:
    if url.startswith("memory://"):
        return None
    from urllib.parse import urlsplit

    import psutil

    port = urlsplit(url).port or 7687
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _server_cpu(proc: Any) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def _settle(server: Any, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while server is not None and time.monotonic() < deadline:
        before = _server_cpu(server)
        time.sleep(1.0)
        if _server_cpu(server) - before < 0.05:
            return


def run(args: Any) -> str:
    """Every measurement the arguments ask for; returns the markdown of the results."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    baseline = Path(args.baseline) if args.baseline else None
    codes: list[Path | None] = [baseline, None] if baseline else [None]
    folders = {"1x": Path(args.datasets) / "lastfm-2k"}
    sizes = args.phase_sizes.split(",")
    if "damaged" in sizes:
        folders["damaged"] = damage(folders["1x"], work / "lastfm-2k-damaged")
    if "16x" in sizes:
        folders["16x"] = work / "lastfm-16x-csv"
        if not (folders["16x"] / "interactions.csv").exists():
            print(json.dumps({"16x csv": _python(None, "--write-16x", str(folders["16x"]))}), flush=True)
    stores = [s for s in args.phase_stores.split(",") if s == "memory" or args.neo4j]
    url_of = {"memory": lambda tag: f"memory://{work / tag}", "neo4j": lambda tag: args.neo4j}
    phases, ends = [], []
    for size in sizes:
        for store in stores:
            if size == "damaged":
                continue  # its phases are 1x's; it is there for the reject reports
            for code in codes:
                tag = f"phases-{size}-{'before' if code else 'after'}"
                if store == "neo4j":
                    _python(None, "--clear", args.neo4j)
                    _settle(_server(args.neo4j))
                r = _python(code, "--phases-child", size, str(folders[size]), url_of[store](tag))
                shutil.rmtree(work / tag, ignore_errors=True)
                phases.append(r)
                print(json.dumps(r), flush=True)
    for size in sizes:
        if size == "16x" and not args.end_to_end_16x:
            continue
        for store in stores:
            for code in codes:
                tag = f"cli-{size}-{'before' if code else 'after'}"
                r = end_to_end(code, size, folders[size], url_of[store](tag), work, _server(url_of[store](tag)))
                shutil.rmtree(work / tag, ignore_errors=True)
                ends.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "rejects"}), flush=True)
    return markdown(phases, ends, args.machine)


def _rate(rows: float, seconds: float) -> str:
    return f"{rows / seconds:,.0f} ({seconds:.2f} s)" if seconds > 0 else "–"


def markdown(phases: list[dict[str, Any]], ends: list[dict[str, Any]], machine: str) -> str:
    name = {"row": "before (per-row checks)", "column": "after (column checks)"}
    out = [f"### Phases of `kgrec load` (`python benchmarks/load.py --phases`, {machine})", "",
           "Rows per second of each phase, seconds in brackets; each run in its own process, the store empty "
           "(create mode). *check* counts every check the code makes: before, each row was checked up to "
           "three times (in the loader, in `check_records`, in the store's batch), after, once.", "",
           "| size | store | code | parse rows/s | check rows/s (rows checked) | write rows/s | CPU s | load avg "
           "(before → after) | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in phases:
        out.append(f"| {r['size']} | {r['store']} | {name[r['code']]} | {_rate(r['parse_rows'], r['parse_s'])} "
                   f"| {_rate(r['check_rows'], r['check_s'])} ({r['check_rows']:,.0f}) "
                   f"| {_rate(r['write_rows'], r['write_s'])} | {r['cpu_s']:.1f} "
                   f"| {r['load'][0]:.1f} → {r['load'][1]:.1f} | {r['rss_mb']:,.0f} |")
    if ends:
        out += ["", "`kgrec load` end to end (the command, from outside: interpreter start, parse, checks, write, "
                "counts), into a fresh memory store and into an emptied Neo4j; CPU s = the command's own "
                "(user + system), server = Neo4j's.", "",
                "| size | store | code | wall s | CPU s | server CPU s | load avg (before → after) | same counts "
                "| same fingerprint | same reject report (rows) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ends:
            twin = next((e for e in ends if e["size"] == r["size"] and e["store"] == r["store"]
                         and e["code"] != r["code"]), None)
            same = {key: "–" if twin is None or key not in r else ("yes" if r[key] == twin[key] else "**NO**")
                    for key in ("counts", "fingerprint", "rejects")}
            rows = max(0, len(r["rejects"].splitlines()) - 1)
            server = "–" if r["server_cpu_s"] is None else f"{r['server_cpu_s']:.1f}"
            out.append(f"| {r['size']} | {r['store']} | {name[r['code']]} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
                       f"| {server} | {r['load'][0]:.1f} → {r['load'][1]:.1f} | {same['counts']} "
                       f"| {same['fingerprint']} | {same['rejects']} ({rows}) |")
    return "\n".join(out)


def child_main(argv: list[str]) -> bool:
    """Run a child command named in ``argv``; False when ``argv`` names none."""
    if argv[:1] == ["--phases-child"]:
        print(json.dumps(phases_child(*argv[1:4])))
    elif argv[:1] == ["--fingerprint"]:
        print(json.dumps(fingerprint_child(argv[1], argv[2] == "clear")))
    elif argv[:1] == ["--clear"]:
        print(json.dumps(clear_child(argv[1])))
    elif argv[:1] == ["--write-16x"]:
        print(json.dumps(write_16x(argv[1])))
    else:
        return False
    return True


if __name__ == "__main__":
    if not child_main(sys.argv[1:]):
        raise SystemExit("run benchmarks/load.py --phases")
