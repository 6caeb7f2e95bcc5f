"""Load benchmark: Last.fm 2K, ml-latest-small and gowalla-u1000 into MemoryStore and Neo4j, by every path.

Paths, each in its own child process (its peak RSS and CPU are its own):

- ``memory``: MemoryStore, ``kgrec load``'s path.
- ``old``: Neo4j per-call upserts in batches of 10,000 (what ``kgrec load`` did before load
  modes), into an empty database.
- ``create`` / ``create-1w``: ``write_graph(mode="create")`` into an empty database, with 2
  concurrent transactions (the default) and with 1.
- ``merge-empty``, ``merge-again``, ``merge-half``: ``write_graph(mode="merge")`` into an empty
  database, into one already holding the whole graph (loaded twice), and into one holding the
  first half of every record kind.
- ``bulk``: ``kgrec export --format neo4j-csv`` from a MemoryStore, then
  ``neo4j-local import`` into a stopped instance of its own (started afterwards to check it).

Before the measured runs the server is warmed by unmeasured old, create and merge loads of
ml-latest-small (``--warmup`` rounds): on a fresh server the first create-mode load of Last.fm
cost 24.8 server CPU-s and the third 9.2 (JIT compilation), which would otherwise be charged to
whichever path runs first. A long-running server is warm. Each measured write starts once the
server is idle (under 5% of a core), so no path pays for the previous one's background work.

Measured: write seconds (checks, nodes and relationships), relationships/s over the whole write
and over the relationship phase alone, CPU seconds of the client, of the Neo4j server (found by
its port, or ``--neo4j-pid``) and of neo4j-admin, the load average around each run (other jobs
on the machine slow every number but CPU), and the counts and snapshot fingerprint, which must
equal MemoryStore's.

    deploy/neo4j/with-neo4j .venv/bin/python benchmarks/load.py --datasets ../shared/datasets --write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sections import write_section

ROOT = Path(__file__).resolve().parent.parent

DATASETS = {"lastfm-2k": "lastfm-2k", "ml-latest-small": "ml-latest-small", "gowalla-u1000": "gowalla-u1000"}
#: Check-in files have no header row (loaders/gowalla.py); every line of them is data.
HEADERLESS = ("_checkins.txt", "_poi_coos.txt", "_social_relations.txt", "_poi_categories.txt")
RELATIONSHIPS = ("interactions", "taggings", "item_tags", "follows", "facts")
NEO4J_PATHS = ("old", "create", "create-1w", "merge-empty", "merge-again", "merge-half", "bulk")
LOCAL = ROOT / "deploy" / "neo4j" / "neo4j-local"
TARGETS = {"create": 40_000.0, "merge": 20_000.0, "bulk": 100_000.0, "memory_lastfm_s": 15.0, "rss_mb": 1536.0}


def child(dataset: str, path: str, scenario: str, target: str) -> dict[str, Any]:
    """Parse one dataset and write it by one path; runs in its own process."""
    sys.path.insert(0, str(ROOT))
    from kgrec.graph.schema import COUNT_KEYS
    from kgrec.loaders import gowalla, lastfm, movielens

    t0 = time.perf_counter()
    loaded = {"lastfm-2k": lastfm, "gowalla-u1000": gowalla}.get(dataset, movielens).load(path)
    parse_s = time.perf_counter() - t0
    records = loaded.records
    out: dict[str, Any] = {"dataset": dataset, "path": scenario, "parse_s": parse_s,
                           "relationships": sum(len(getattr(records, k)) for k in RELATIONSHIPS),
                           "file_rows": dict(loaded.report.rows), "rejects": len(loaded.report.rejects),
                           "notes": loaded.report.notes}
    if scenario == "bulk":
        out.update(_bulk(records, target))
    else:
        out.update(_write(records, scenario, target))
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["counts"] = {k: out["counts"][k] for k in COUNT_KEYS}
    return out


def _write(records: Any, scenario: str, url: str) -> dict[str, Any]:
    from kgrec.graph.records import GraphRecords
    from kgrec.graph.schema import COUNT_KEYS
    from kgrec.graph.store_factory import open_store

    server = _server(url)
    with open_store(url) as store:
        store.clear()
        if scenario == "merge-again":
            store.write_graph(records, "create")
        elif scenario == "merge-half":
            store.write_graph(GraphRecords(**{k: getattr(records, k)[: len(getattr(records, k)) // 2]
                                              for k in COUNT_KEYS}), "create")
        if scenario == "create-1w":
            store.workers = 1  # type: ignore[attr-defined]
        _settle(server)
        timings: dict[str, float] = {}
        load0, cpu0, server0, t0 = _loadavg(), _own_cpu(), _cpu(server), time.perf_counter()
        if scenario == "old":
            _upserts(store, records, timings)
        else:
            mode = {"memory": "auto", "create-1w": "create"}.get(scenario, scenario.split("-")[0])
            store.write_graph(records, mode, timings=timings)
        write_s = time.perf_counter() - t0
        measured = {"write_s": write_s, "client_cpu_s": _own_cpu() - cpu0,
                    "server_cpu_s": _cpu(server) - server0 if server else None,
                    "rel_phase_s": sum(timings.get(k, 0.0) for k in RELATIONSHIPS),
                    "load": (load0, _loadavg())}
        measured["counts"] = store.counts()
        t1 = time.perf_counter()
        snap = store.snapshot()
        measured.update(snapshot_s=time.perf_counter() - t1, fingerprint=snap.fingerprint)
        store.clear()
    return measured


def _upserts(store: Any, records: Any, timings: dict[str, float]) -> None:
    """The per-call upserts in batches of 10,000: ``kgrec load`` before load modes."""
    from kgrec.graph.schema import COUNT_KEYS

    for kind in COUNT_KEYS:
        rows, started = getattr(records, kind), time.perf_counter()
        for start in range(0, len(rows), 10_000):
            store.upsert(kind, rows[start : start + 10_000])
        timings[kind] = time.perf_counter() - started
    store.flush()


def _bulk(records: Any, instance: str) -> dict[str, Any]:
    """Export from a MemoryStore, import into a stopped instance, start it and read it back."""
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.neo4j_csv import export_neo4j_csv
    from kgrec.graph.store_factory import open_store

    with tempfile.TemporaryDirectory() as tmp:
        memory = MemoryStore(Path(tmp) / "graph")
        memory.load(records)
        t0 = time.perf_counter()
        export_neo4j_csv(memory.export(), Path(tmp) / "csv")
        export_s = time.perf_counter() - t0
        load0, children0, t1 = _loadavg(), _children_cpu(), time.perf_counter()
        done = subprocess.run([sys.executable, str(LOCAL), "import", "--dir", instance, "--from",
                               str(Path(tmp) / "csv"), "--overwrite"], capture_output=True, text=True, check=False)
        write_s = time.perf_counter() - t1
        if done.returncode != 0:
            raise SystemExit(f"neo4j-local import failed:\n{done.stderr[-3000:]}")
        log = (Path(instance) / "logs" / "import.log").read_text(errors="replace")
        measured = {"write_s": write_s, "export_s": export_s, "admin_s": _admin_seconds(log),
                    "client_cpu_s": None, "server_cpu_s": _children_cpu() - children0,
                    "rel_phase_s": None, "load": (load0, _loadavg())}
        started = subprocess.run([sys.executable, str(LOCAL), "start", "--dir", instance], capture_output=True,
                                 text=True, check=False)
        try:
            if started.returncode != 0:
                raise SystemExit(f"neo4j-local start failed:\n{started.stderr[-3000:]}")
            with open_store(started.stdout.strip().splitlines()[-1]) as store:
                measured["counts"] = store.counts()
                t2 = time.perf_counter()
                measured.update(fingerprint=store.snapshot().fingerprint, snapshot_s=time.perf_counter() - t2)
        finally:
            subprocess.run([sys.executable, str(LOCAL), "stop", "--dir", instance], capture_output=True, check=False)
    return measured


def _admin_seconds(log: str) -> float | None:
    """neo4j-admin's own "IMPORT DONE in 2s 365ms" (without its JVM start)."""
    import re

    found = re.search(r"IMPORT DONE in ((?:\d+m )?)(?:(\d+)s )?(\d+)ms", log)
    if not found:
        return None
    minutes = int(found.group(1).strip()[:-1]) if found.group(1) else 0
    return minutes * 60 + int(found.group(2) or 0) + int(found.group(3)) / 1000


def _server(url: str) -> Any:
    """The Neo4j server process (``KGREC_BENCH_NEO4J_PID`` or the one listening on the URL's
    port), to count its CPU time; None for MemoryStore."""
    if url.startswith("memory://"):
        return None
    import psutil

    pid = os.environ.get("KGREC_BENCH_NEO4J_PID")
    if pid:
        return psutil.Process(int(pid))
    port = urlsplit(url).port or 7687
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _settle(server: Any, limit: float = 60.0) -> None:
    """Wait (up to ``limit`` s) until the server uses under 5% of a core, so that background work
    left by the previous path (checkpoints after a clear) is not charged to this one."""
    if server is None:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = _cpu(server)
        time.sleep(1.0)
        if _cpu(server) - before < 0.05:
            return


def _own_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _cpu(proc: Any) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_child(dataset: str, path: Path, scenario: str, target: str, pid: int | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if pid:
        env["KGREC_BENCH_NEO4J_PID"] = str(pid)
    proc = subprocess.run([sys.executable, __file__, "--child", dataset, str(path), scenario, target],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{dataset} by {scenario} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def data_lines(folder: Path) -> dict[str, int]:
    """Non-empty lines after the header of every data file: what the loaders must account for."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".dat", ".csv"):
            out[p.name] = sum(1 for line in p.read_bytes().split(b"\n")[1:] if line.strip())
        elif p.name.endswith(HEADERLESS):
            out[p.name] = sum(1 for line in p.read_bytes().split(b"\n") if line.strip())
    return out


def _fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "–" if value is None else pattern.format(value)


def markdown(results: list[dict[str, Any]], lines: dict[str, dict[str, int]], machine: str) -> str:
    out = [f"Run: `python benchmarks/load.py` on {machine}; each path in its own process, one after "
           "another against the same server (heap 1g, page cache 256m), warmed first by unmeasured loads.", ""]
    out += ["| dataset | path | write s | relationships/s (whole write) | relationships/s (relationship phase) "
            "| client CPU s | server CPU s | relationships per server CPU-s | load avg (before → after) "
            "| snapshot() s | peak RSS MB | = memory |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rels, server = r["relationships"], r["server_cpu_s"]
        same = "–" if r["path"] == "memory" else ("yes" if r["same_as_memory"] else "**NO**")
        write = f"{r['write_s']:.1f}" + (f" (+ export {r['export_s']:.1f}; neo4j-admin's own "
                                         f"{_fmt(r['admin_s'], '{:.1f}')})" if r["path"] == "bulk" else "")
        rel_phase = rels / r["rel_phase_s"] if r.get("rel_phase_s") else (
            rels / r["admin_s"] if r["path"] == "bulk" and r.get("admin_s") else None)
        out.append(
            f"| {r['dataset']} | {r['path']} | {write} | {rels / r['write_s']:,.0f} | {_fmt(rel_phase)} "
            f"| {_fmt(r['client_cpu_s'], '{:.1f}')} | {_fmt(server, '{:.1f}')} "
            f"| {_fmt(rels / server if server else None)} | {r['load'][0]:.1f} → {r['load'][1]:.1f} "
            f"| {r['snapshot_s']:.1f} | {r['rss_mb']:,.0f} | {same} |")
    out += ["", "Paths: *old* = per-call upserts in batches of 10,000 (`kgrec load` before load modes); *create* = "
            "`--mode create` (2 concurrent transactions; *create-1w*: 1); *merge-empty* / *merge-again* / "
            "*merge-half* = `--mode merge` into an empty database / one holding the whole graph (loaded twice) / "
            "one holding the first half of every record kind; *bulk* = `kgrec export --format neo4j-csv` from a "
            "MemoryStore, then `neo4j-local import` into a stopped instance (write s = the import command with its "
            "JVM; the relationship-phase column uses neo4j-admin's own time; server CPU = neo4j-admin's CPU). "
            "Relationship phase = the seconds spent on relationship kinds, after the checks and the nodes. "
            "*= memory*: counts and snapshot fingerprint equal MemoryStore's.", ""]
    out += [f"Targets: create ≥ {TARGETS['create']:,.0f} relationships/s, merge ≥ {TARGETS['merge']:,.0f}/s "
            f"(incremental: merge-again, merge-half), bulk ≥ {TARGETS['bulk']:,.0f}/s, on 2 cores; Last.fm into "
            f"MemoryStore ≤ {TARGETS['memory_lastfm_s']:.0f} s; peak RSS ≤ 1.5 GB.", ""]
    out += [*verdicts(results), ""]
    for ds in DATASETS:
        rs = [r for r in results if r["dataset"] == ds]
        if not rs:
            continue
        keys = list(rs[0]["counts"])
        out += [f"Counts after loading {ds} (file data lines: "
                + ", ".join(f"{k} {v:,}" for k, v in lines[ds].items())
                + f"; rows rejected: {rs[0]['rejects']}); every path gave the same counts"
                + ("" if all(r["counts"] == rs[0]["counts"] for r in rs) else " **except some**") + ":", ""]
        out += ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
        out.append("| " + " | ".join(f"{rs[0]['counts'][k]:,}" for k in keys) + " |")
        out += [""] + [f"- {n}" for n in rs[0]["notes"]] + [""]
    return "\n".join(out)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """One line per dataset and target, judged on the whole write (checks, nodes and
    relationships; for bulk the import command with its JVM), with the load average it ran at."""
    out = ["**Verdicts of this run** (whole-write rates; relationship-phase / neo4j-admin's own rates in "
           "brackets):", ""]
    for ds in DATASETS:
        by_path = {r["path"]: r for r in results if r["dataset"] == ds}
        checks = [("create", "create", TARGETS["create"]), ("merge, loaded twice", "merge-again", TARGETS["merge"]),
                  ("merge into half", "merge-half", TARGETS["merge"]), ("bulk", "bulk", TARGETS["bulk"])]
        parts = []
        for name, path, target in checks:
            r = by_path.get(path)
            if r is None:
                continue
            rate = r["relationships"] / r["write_s"]
            inner = r.get("rel_phase_s") or (r.get("admin_s") if path == "bulk" else None)
            bracket = f" [{r['relationships'] / inner:,.0f}]" if inner else ""
            verdict = "met" if rate >= target else f"**missed** ({rate / target:.0%})"
            parts.append(f"{name} {rate:,.0f}/s{bracket} vs ≥ {target:,.0f}: {verdict} (load {r['load'][0]:.1f})")
        if "old" in by_path and "create" in by_path:
            old, new = by_path["old"], by_path["create"]
            parts.append(f"create vs old path in this run: {old['write_s'] / new['write_s']:.1f}x faster, "
                         f"{(old['server_cpu_s'] or 0) / max(new['server_cpu_s'] or 1e-9, 1e-9):.1f}x less server CPU")
        if parts:
            out.append(f"- {ds}: " + "; ".join(parts) + ".")
    busy = [r["load"][0] for r in results if r["load"][0] > 1.5]
    if busy:
        out += ["", f"This run shared its 2 cores with other jobs (load average up to {max(busy):.1f}): wall-clock "
                "rates are lower than on a quiet machine; server CPU-seconds per relationship compare best."]
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:6])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("KGREC_DATASETS", str(ROOT.parent / "shared" / "datasets")))
    ap.add_argument("--neo4j", default=os.environ.get("KGREC_TEST_NEO4J_URI"),
                    help="bolt:// or neo4j:// URI of a server whose database may be emptied")
    ap.add_argument("--neo4j-pid", type=int, help="the server's pid (default: the process listening on its port)")
    ap.add_argument("--only", choices=list(DATASETS), help="run one dataset only")
    ap.add_argument("--paths", default=",".join(("memory", *NEO4J_PATHS)),
                    help="comma-separated paths to run (default: all)")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured warm-up rounds on the server (default 2)")
    ap.add_argument("--write", action="store_true", help="write the results under the load marker in RESULTS.md")
    ap.add_argument("--machine", default=f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    ph = ap.add_argument_group("phases", "parse, check and write apart, and kgrec load end to end "
                               "(benchmarks/load_phases.py); written under the load-phases marker")
    ph.add_argument("--phases", action="store_true", help="run these instead of the paths above")
    ph.add_argument("--baseline", help="a checkout laid out as DIR/kgrec, measured the same way (before)")
    ph.add_argument("--phase-sizes", default="1x,damaged,16x", help="1x (Last.fm 2K), damaged, 16x (synthetic)")
    ph.add_argument("--phase-stores", default="memory,neo4j")
    ph.add_argument("--end-to-end-16x", action="store_true", help="also time kgrec load of the 16x CSV folder")
    ph.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "kgrec-load-phases"))
    args = ap.parse_args()
    if args.phases:
        import load_phases

        text = load_phases.run(args)
        print(text)
        if args.write:
            write_section("load-phases", text)
        return
    paths = args.paths.split(",")
    base = Path(args.datasets)
    results, lines, failures = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.warmup if args.neo4j else 0):
            for scenario in ("old", "create", "merge-again"):
                run_child("ml-latest-small", base / DATASETS["ml-latest-small"], scenario, args.neo4j, args.neo4j_pid)
        for ds, folder in DATASETS.items():
            if args.only and ds != args.only:
                continue
            lines[ds] = data_lines(base / folder)
            memory = run_child(ds, base / folder, "memory", f"memory://{tmp}/{ds}", None)
            runs = [memory] if "memory" in paths else []
            for scenario in (p for p in NEO4J_PATHS if p in paths):
                if scenario != "bulk" and not args.neo4j:
                    continue
                target = str(Path(tmp) / f"bulk-{ds}") if scenario == "bulk" else args.neo4j
                runs.append(run_child(ds, base / folder, scenario, target, args.neo4j_pid))
            for r in runs:
                r["same_as_memory"] = r["counts"] == memory["counts"] and r["fingerprint"] == memory["fingerprint"]
                if not r["same_as_memory"]:
                    failures.append(f"{ds} by {r['path']}: counts or fingerprint differ from MemoryStore's")
                print(json.dumps(r), flush=True)
            results += runs
    text = markdown(results, lines, args.machine)
    print(text)
    if args.write:
        write_section("load", text)
    if failures:
        raise SystemExit("FAILED:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
