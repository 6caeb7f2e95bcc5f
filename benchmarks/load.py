"""Load benchmark: Last.fm 2K and ml-latest-small into MemoryStore and Neo4j.

Each (dataset, store) pair runs in its own child process, so its peak RSS is the loading
process's own. Measured: parse time, write time, relationships written per second (the
relationship kinds only), ``snapshot()`` time, peak RSS, and the counts in the store, which
must match between the stores and equal the files' rows minus the reported rejects.

    python benchmarks/load.py --datasets ../shared/datasets --neo4j bolt://127.0.0.1:7687 --write
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MARKER = "<!-- section:load -->"
DATASETS = {"lastfm-2k": "lastfm-2k", "ml-latest-small": "ml-latest-small"}
RELATIONSHIPS = ("interactions", "taggings", "item_tags", "follows", "facts")
TARGETS = {"memory_lastfm_s": 15.0, "neo4j_rels_per_s": 20_000.0, "neo4j_snapshot_s": 10.0, "rss_mb": 1536.0}


def child(dataset: str, path: str, store_url: str) -> dict[str, Any]:
    """Parse, write and snapshot one dataset into one store; runs in its own process."""
    sys.path.insert(0, str(ROOT))
    from graph.records import COUNT_KEYS, GraphRecords
    from graph.store import open_store
    from loaders import lastfm, movielens
    from loaders.ingest import write_records

    cpu_start = _own_cpu()
    t0 = time.perf_counter()
    loaded = (lastfm if dataset == "lastfm-2k" else movielens).load(path)
    parse_s = time.perf_counter() - t0
    timings: dict[str, float] = {}
    recs = loaded.records
    nodes = GraphRecords(users=recs.users, items=recs.items, tags=recs.tags)
    rels_only = GraphRecords(interactions=recs.interactions, taggings=recs.taggings, item_tags=recs.item_tags,
                             follows=recs.follows, facts=recs.facts)
    server = _server_process()
    with open_store(store_url) as store:
        store.clear()
        t1 = time.perf_counter()
        written = write_records(store, nodes, timings=timings)
        cpu0 = _cpu(server)
        written_rels = write_records(store, rels_only, timings=timings)
        server_cpu = _cpu(server) - cpu0
        write_s = time.perf_counter() - t1
        cpu_s = _own_cpu() - cpu_start
        written.update({k: written_rels[k] for k in RELATIONSHIPS})
        counts = store.counts()
        t2 = time.perf_counter()
        snap = store.snapshot()
        snapshot_s = time.perf_counter() - t2
        store.clear()
    rels = sum(written[k] for k in RELATIONSHIPS)
    rel_s = sum(timings[k] for k in RELATIONSHIPS)
    return {
        "dataset": dataset,
        "store": "memory" if store_url.startswith("memory://") else "neo4j",
        "parse_s": parse_s,
        "write_s": write_s,
        "total_s": parse_s + write_s,
        "relationships": rels,
        "rels_per_s": rels / rel_s if rel_s else 0.0,
        "rels_per_server_cpu_s": rels / server_cpu if server and server_cpu else None,
        "snapshot_s": snapshot_s,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_s": cpu_s,  # parse + write, not the snapshot
        "counts": {k: counts[k] for k in COUNT_KEYS},
        "snapshot_counts": snap.counts,
        "file_rows": dict(loaded.report.rows),
        "rejects": len(loaded.report.rejects),
        "notes": loaded.report.notes,
    }


def _server_process() -> Any:
    """The Neo4j server process named by ``KGREC_BENCH_NEO4J_PID`` (to count its CPU time), or None."""
    pid = os.environ.get("KGREC_BENCH_NEO4J_PID")
    if not pid:
        return None
    import psutil

    return psutil.Process(int(pid))


def _own_cpu() -> float:
    """CPU seconds this process used so far: unlike wall time, barely moved by other jobs."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _cpu(proc: Any) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def data_lines(folder: Path) -> dict[str, int]:
    """Non-empty lines after the header of every data file: what the loaders must account for."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".dat", ".csv"):
            out[p.name] = sum(1 for line in p.read_bytes().split(b"\n")[1:] if line.strip())
    return out


def run_child(dataset: str, path: Path, store_url: str, neo4j_pid: int | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", dataset, str(path), store_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if neo4j_pid and not store_url.startswith("memory://"):
        env["KGREC_BENCH_NEO4J_PID"] = str(neo4j_pid)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{dataset} into {store_url} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(results: list[dict[str, Any]], lines: dict[str, dict[str, int]], machine: str) -> str:
    out = [f"Run: `python benchmarks/load.py` on {machine}; each load in its own process.", ""]
    out += ["| dataset | store | parse s | write s | parse+write s | loader CPU s | relationships/s | relationships "
            "per server CPU-s | snapshot() s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_cpu = f"{r['rels_per_server_cpu_s']:,.0f}" if r.get("rels_per_server_cpu_s") else "–"
        out.append(f"| {r['dataset']} | {r['store']} | {r['parse_s']:.1f} | {r['write_s']:.1f} | {r['total_s']:.1f} "
                   f"| {r['cpu_s']:.1f} | {r['rels_per_s']:,.0f} | {per_cpu} | {r['snapshot_s']:.1f} "
                   f"| {r['rss_mb']:,.0f} |")
    out += ["", "Targets: Last.fm into MemoryStore ≤ 15 s; Neo4j ≥ 20,000 relationships/s (UNWIND batches); "
            "Neo4j snapshot() ≤ 10 s; peak RSS ≤ 1.5 GB (the loading process; the Neo4j server is not counted).", ""]
    for ds in DATASETS:
        rs = [r for r in results if r["dataset"] == ds]
        if not rs:
            continue
        keys = list(rs[0]["counts"])
        out += [f"Counts after loading {ds} (file data lines: "
                + ", ".join(f"{k} {v:,}" for k, v in lines[ds].items())
                + f"; rows rejected: {rs[0]['rejects']})", ""]
        out += ["| store | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for r in rs:
            out.append(f"| {r['store']} | " + " | ".join(f"{r['counts'][k]:,}" for k in keys) + " |")
        out += [""] + [f"- {n}" for n in rs[0]["notes"]] + [""]
    return "\n".join(out)


def write_section(text: str) -> None:
    """Replace the text under the load marker (up to the next section marker) in RESULTS.md."""
    doc = RESULTS.read_text(encoding="utf-8")
    start = doc.index(MARKER) + len(MARKER)
    nxt = re.search(r"<!-- section:", doc[start:])
    end = start + nxt.start() if nxt else len(doc)
    RESULTS.write_text(doc[:start] + "\n\n" + text.strip() + "\n\n" + doc[end:], encoding="utf-8")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:5])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("KGREC_DATASETS", str(ROOT.parent / "shared" / "datasets")))
    ap.add_argument("--neo4j", default=os.environ.get("KGREC_TEST_NEO4J_URI"),
                    help="bolt:// or neo4j:// URI of a server whose database may be emptied")
    ap.add_argument("--neo4j-pid", type=int, help="the server's pid, to report relationships per server CPU-second")
    ap.add_argument("--only", choices=list(DATASETS), help="run one dataset only")
    ap.add_argument("--write", action="store_true", help=f"write the results under {MARKER} in {RESULTS.name}")
    ap.add_argument("--machine", default=f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    args = ap.parse_args()
    base = Path(args.datasets)
    results, lines = [], {}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds, folder in DATASETS.items():
            if args.only and ds != args.only:
                continue
            lines[ds] = data_lines(base / folder)
            stores = [f"memory://{tmp}/{ds}"] + ([args.neo4j] if args.neo4j else [])
            for url in stores:
                r = run_child(ds, base / folder, url, args.neo4j_pid)
                print(json.dumps(r), flush=True)
                results.append(r)
                read = [k for k in lines[ds] if k in r["file_rows"]]
                if sum(r["file_rows"][k] for k in read) + r["rejects"] != sum(lines[ds][k] for k in read):
                    failures.append(f"{ds} {r['store']}: rows + rejects do not add up to the files' lines")
                if r["counts"] != {k: r["snapshot_counts"][k] for k in r["counts"]}:
                    failures.append(f"{ds} {r['store']}: counts() and snapshot() disagree")
            per_store = [r["counts"] for r in results if r["dataset"] == ds]
            if any(c != per_store[0] for c in per_store):
                failures.append(f"{ds}: the stores hold different counts: {per_store}")
    text = markdown(results, lines, args.machine)
    print(text)
    if args.write:
        write_section(text)
    if failures:
        raise SystemExit("FAILED:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
