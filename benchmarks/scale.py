"""Scale benchmark: how every cost grows with the graph, and what this machine can hold.

Sizes: synthetic graphs of 1×, 4×, 16× and 64× Last.fm 2K (``loaders.synthetic_scale``:
users, items, tags, interactions, taggings and follows scaled together, with the planted
community structure), plus Last.fm 2K and ml-latest-small themselves. Per size, each step in
its own process (peak RSS is that process's own ``VmHWM``, which it reports at its end; a
watchdog samples the process tree's RSS and kills a step past
``--limit-gb`` or when the machine's free memory falls under ``--reserve-gb``, because the
machine is shared):

- ``load_memory`` / ``load_neo4j``: ``kgrec load`` (CSV folder for the synthetic graphs,
  the dataset loaders otherwise) into a MemoryStore and into Neo4j (emptied first);
- ``snapshot_memory`` / ``snapshot_neo4j``: open the store and take its snapshot; where no
  store could be loaded (64×), the snapshot is built from the generator's arrays
  (``snapshot_arrays``, the same fingerprint as through a store);
- ``fit:<model>``: every registered recommender fitted on the saved snapshot (kge with 2
  epochs, up to ``--kge-max-scale``), peak RSS, and the arrays the fitted model holds;
- ``serve``: the default ``kgrec train`` models assembled into a bundle and served through
  the real app (Flask test client), p50/p99 of a recommendation request, serving RSS;
- ``batch``: ``kgrec recommend``'s per-user work for up to ``--batch-users`` users in one
  process (default threads and 1 thread) and on Ray × 2 (``recommenders.batch``).

Before a step runs at a size, its time and peak RSS are extrapolated from the two largest
sizes already measured (a fixed part plus a power law in the interactions, `scale_report.growth`); a step estimated past
the limits is recorded as skipped with that estimate instead of run. Results accumulate in
``benchmarks/results/scale.json`` (a rerun skips what is there; ``--force`` redoes it); the
report (``benchmarks/scale_report.py``) writes the tables, slopes, the log–log plot and the
``scale`` section of RESULTS.md.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --sizes lastfm-2k,ml-latest-small,1x,4x,16x,64x \\
        --neo4j-local --write
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_report import estimate, interactions_of, write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
STEPS = [sys.executable, str(Path(__file__).resolve().parent / "scale_steps.py")]
REAL = {"lastfm-2k": ["lastfm-2k", "--path", "{datasets}/lastfm-2k"],
        "ml-latest-small": ["movielens", "--path", "{datasets}/ml-latest-small"]}
SEED = 42
#: Models fitted in the kge step get this many epochs (its cost per epoch is what scales).
KGE_EPOCHS = 2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def scale_of(size: str) -> float | None:
    """``4x`` -> 4.0; a dataset name -> None."""
    return float(size[:-1]) if size.endswith("x") else None


class Bench:
    """Runs the steps of each size as child processes and keeps what they measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.path = Path(args.results)
        self.results: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {"runs": {}}
        self.neo4j: str | None = args.neo4j or os.environ.get("KGREC_TEST_NEO4J_URI")
        self._neo4j_instance: Path | None = None

    # -- bookkeeping ---------------------------------------------------------------------------
    def run_of(self, size: str) -> dict[str, Any]:
        return self.results["runs"].setdefault(size, {"steps": {}})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.results, indent=1), encoding="utf-8")

    def done(self, size: str, step: str) -> bool:
        got = self.run_of(size)["steps"].get(step)
        return got is not None and not self.a.force and "error" not in got

    def record(self, size: str, step: str, value: dict[str, Any]) -> dict[str, Any]:
        value = {**value, "load_average": os.getloadavg()[0], "at": time.strftime("%Y-%m-%d %H:%M")}
        self.run_of(size)["steps"][step] = value
        self.save()
        brief = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in value.items()
                 if k in ("wall_s", "peak_rss_mb", "fit_s", "p50_ms", "skipped", "error", "killed",
                          "ray_users_per_s", "local_users_per_s", "snapshot_s")}
        log(f"{size} {step}: {brief}")
        return value

    # -- children ------------------------------------------------------------------------------
    def child(self, argv: list[str], timeout: float) -> dict[str, Any]:
        """Run a child to the end under the watchdog: wall time, peak RSS, its RESULT line."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KGREC_DATASETS": self.a.datasets}
        limit, reserve = self.a.limit_gb * 2**30, self.a.reserve_gb * 2**30
        with tempfile.TemporaryFile("w+") as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                    start_new_session=True)
            killed, seen = None, 0.0
            while True:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid:
                    break
                rss = _tree_rss(proc.pid)
                seen = max(seen, rss)
                if rss > limit:
                    killed = f"RSS {rss / 2**30:.1f} GB passed the {self.a.limit_gb:g} GB limit"
                elif psutil.virtual_memory().available < reserve:
                    killed = f"the machine's free memory fell under {self.a.reserve_gb:g} GB (RSS {rss / 2**30:.1f} GB)"
                elif time.perf_counter() - t0 > timeout:
                    killed = f"still running after {timeout:.0f} s"
                if killed:
                    os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(0.25)
            wall = time.perf_counter() - t0
            out.seek(0)
            text = out.read()
        # ru_maxrss is not used: Linux folds the parent's size at fork into a child's ru_maxrss.
        result: dict[str, Any] = {"wall_s": wall, "peak_rss_mb": seen / 2**20, "tree_peak_rss_mb": seen / 2**20}
        if killed:
            return {**result, "killed": killed}
        code = os.waitstatus_to_exitcode(status)
        lines = [x for x in text.splitlines() if x.startswith("RESULT ")]
        if code != 0:
            return {**result, "error": f"exit {code}: {text.strip().splitlines()[-3:] if text.strip() else ''}"}
        result.update(json.loads(lines[-1][7:]) if lines else {})
        if "vmhwm_mb" in result:  # the step process's own peak, read by itself at the end
            result["peak_rss_mb"] = result["vmhwm_mb"]
        return result

    def step(self, size: str, step: str, argv: list[str], *, timeout: float | None = None,
             prepare: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """Run one step unless done, or skipped because its estimate is past the limits;
        ``prepare`` runs first, only when the step does."""
        if self.done(size, step):
            return self.run_of(size)["steps"][step]
        timeout = timeout or self.a.timeout
        inter = interactions_of(self.results, size)
        if inter:
            rss = estimate(self.results, step, "peak_rss_mb", inter)
            secs = estimate(self.results, step, "wall_s", inter)
            if rss is not None and rss > self.a.limit_gb * 1024:
                return self.record(size, step, {"skipped": f"estimated peak RSS {rss / 1024:.1f} GB > "
                                                f"{self.a.limit_gb:g} GB", "estimated_rss_mb": rss,
                                                "estimated_s": secs})
            if secs is not None and secs > timeout:
                return self.record(size, step, {"skipped": f"estimated {secs / 60:.0f} min > {timeout / 60:.0f} min",
                                                "estimated_rss_mb": rss, "estimated_s": secs})
        if prepare is not None:
            prepare()
        log(f"{size} {step} ...")
        return self.record(size, step, self.child(argv, timeout))

    def steps_call(self, name: str, **kwargs: Any) -> list[str]:
        return [*STEPS, name, json.dumps(kwargs)]

    def kgrec(self, *argv: str) -> list[str]:
        """A ``kgrec`` command, run inside a step process so its own peak RSS is reported."""
        return self.steps_call("cli", argv=list(argv))

    # -- one size ------------------------------------------------------------------------------
    def run_size(self, size: str) -> None:
        scale = scale_of(size)
        d = self.work / size
        d.mkdir(parents=True, exist_ok=True)
        run = self.run_of(size)
        run["scale"] = scale
        if scale is not None and "counts" not in run:
            got = self.child(self.steps_call("counts", scale=scale, seed=SEED), self.a.timeout)
            run["counts"] = got["counts"]
            self.save()
        source, write_csv = self.load_source(size, d)
        store = f"memory://{d / 'store'}"
        snap = d / "snapshot"
        self.step(size, "load_memory", self.kgrec("load", *source, "--store", store, "--replace", "--no-progress"),
                  prepare=write_csv)
        if self.neo4j and (scale is None or scale <= self.a.neo4j_max_scale):
            def clear_neo4j() -> None:
                write_csv()
                self.child(self.steps_call("neo4j_clear", store=self.neo4j), self.a.timeout)

            self.step(size, "load_neo4j", self.kgrec("load", *source, "--store", self.neo4j, "--no-progress"),
                      prepare=clear_neo4j)
            if _ok(run, "load_neo4j"):
                self.step(size, "snapshot_neo4j", self.steps_call("snapshot", store=self.neo4j))
        if _ok(run, "load_memory"):
            got = self.step(size, "snapshot_memory", self.steps_call("snapshot", store=store, out=str(snap)))
            if got and "counts" in got:
                run["counts"] = got["counts"]
        elif scale is not None:
            self.step(size, "snapshot_arrays", self.steps_call("arrays_snapshot", scale=scale, seed=SEED,
                                                               out=str(snap)))
        if not (snap / "snapshot.json").exists():
            log(f"{size}: no snapshot; no fits")
            return
        self.run_fits(size, d, snap, scale)
        self.run_serving(size, d, snap, store)

    def load_source(self, size: str, d: Path) -> tuple[list[str], Callable[[], None]]:
        """``kgrec load`` arguments for this size, and what makes their files exist."""
        if size in REAL:
            return [x.format(datasets=self.a.datasets) for x in REAL[size]], lambda: None
        csv_dir = d / "csv"

        def write_csv() -> None:
            if not (csv_dir / "interactions.csv").exists():
                tmp = csv_dir.with_name("csv.partial")
                shutil.rmtree(tmp, ignore_errors=True)
                got = self.child(self.steps_call("write_csv", scale=scale_of(size), seed=SEED, out=str(tmp)),
                                 self.a.timeout)
                if "error" in got or "killed" in got:
                    raise RuntimeError(f"{size}: writing the CSV failed: {got}")
                tmp.rename(csv_dir)
                log(f"{size}: CSV written in {got['wall_s']:.0f} s")

        return ["csv", "--path", str(csv_dir)], write_csv

    def run_fits(self, size: str, d: Path, snap: Path, scale: float | None) -> None:
        from kgrec.recommenders.registry import registry

        names = sorted(registry(), key=lambda n: n == "hybrid")
        for name in names:
            too_big = scale is not None and scale > self.a.kge_max_scale
            if name == "kge" and (self.a.skip_kge or too_big):
                if not self.done(size, "fit:kge"):
                    why = ("--skip-kge" if self.a.skip_kge else f"kge runs up to {self.a.kge_max_scale:g}× here")
                    self.record(size, "fit:kge", {"skipped": f"{why}; its cost per epoch grows with the training "
                                                  "triples, see benchmarks/kge_ray.py and kge.py"})
                continue
            options = {"epochs": KGE_EPOCHS, "progress": False} if name == "kge" else {}
            self.step(size, f"fit:{name}", self.steps_call("fit", snapshot=str(snap), model=name,
                                                            out=str(d / "models" / name), options=options))

    def run_serving(self, size: str, d: Path, snap: Path, store: str) -> None:
        from kgrec.recommenders.registry import default_models

        run = self.run_of(size)
        names = [n for n in default_models() if _ok(run, f"fit:{n}")]
        if "popularity" not in names:
            return
        store_url = store if _ok(run, "load_memory") else f"memory://{d / 'empty-store'}"
        self.step(size, "serve", self.steps_call("serve", snapshot=str(snap), models=str(d / "models"), names=names,
                                                  store=store_url, bundle=str(d / "bundle"), requests=500))
        if _ok(run, "serve"):
            self.step(size, "batch", self.steps_call("batch", bundle=str(d / "bundle"), users=self.a.batch_users,
                                                      workers=2))

    # -- Neo4j ---------------------------------------------------------------------------------
    def start_neo4j(self) -> None:
        self._neo4j_instance = Path(tempfile.mkdtemp(prefix="kgrec-scale-neo4j-"))
        out = subprocess.run([str(ROOT / "deploy/neo4j/neo4j-local"), "start", "--dir", str(self._neo4j_instance),
                              "--heap", self.a.neo4j_heap, "--pagecache", self.a.neo4j_pagecache],
                             check=True, capture_output=True, text=True)
        self.neo4j = out.stdout.strip().splitlines()[-1]
        self.results["neo4j"] = {"heap": self.a.neo4j_heap, "pagecache": self.a.neo4j_pagecache}
        log(f"Neo4j at {self.neo4j}")

    def stop_neo4j(self) -> None:
        if self._neo4j_instance is not None:
            subprocess.run([str(ROOT / "deploy/neo4j/neo4j-local"), "stop", "--dir", str(self._neo4j_instance)],
                           check=False)
            shutil.rmtree(self._neo4j_instance, ignore_errors=True)


def _ok(run: dict[str, Any], step: str) -> bool:
    got = run["steps"].get(step)
    return got is not None and not ({"error", "killed", "skipped"} & set(got))


def _tree_rss(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += q.memory_info().rss
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="lastfm-2k,ml-latest-small,1x,4x,16x,64x")
    p.add_argument("--datasets", default=os.environ.get("KGREC_DATASETS", "/work/shared/datasets"))
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "kgrec-scale"),
                   help="graphs, stores, snapshots and bundles (large; removed with --clean)")
    p.add_argument("--neo4j", default=None, help="Neo4j URI to load into (emptied first); default "
                   "KGREC_TEST_NEO4J_URI (with-neo4j), else none unless --neo4j-local")
    p.add_argument("--neo4j-local", action="store_true", help="start a throwaway Neo4j (deploy/neo4j/neo4j-local)")
    p.add_argument("--neo4j-heap", default="2g")
    p.add_argument("--neo4j-pagecache", default="1g")
    p.add_argument("--neo4j-max-scale", type=float, default=16)
    p.add_argument("--kge-max-scale", type=float, default=1, help="largest synthetic size kge is fitted at")
    p.add_argument("--skip-kge", action="store_true", help="fit kge nowhere (its own benchmarks measure it)")
    p.add_argument("--batch-users", type=int, default=2000)
    p.add_argument("--limit-gb", type=float, default=10.0, help="kill a step whose RSS passes this")
    p.add_argument("--reserve-gb", type=float, default=3.0, help="kill a step when free memory falls under this")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per step")
    p.add_argument("--results", default=str(RESULTS), help="the JSON the measurements accumulate in")
    p.add_argument("--plot", default=None, help="the PNG (default benchmarks/results/scale.png)")
    p.add_argument("--force", action="store_true", help="redo steps already measured")
    p.add_argument("--only", default=None, help="comma-separated steps to (re)do, e.g. batch,serve")
    p.add_argument("--redo-floored", action="store_true", help="redo steps measured before peaks were read from "
                   "VmHWM whose ru_maxrss is the size's smallest (the parent's size at fork, not theirs)")
    p.add_argument("--clean", action="store_true", help="remove --work at the end")
    p.add_argument("--write", action="store_true", help="write the scale section of benchmarks/RESULTS.md")
    p.add_argument("--report-only", action="store_true", help="only render the report from scale.json")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop Neo4j, keep results
    bench = Bench(a)
    if not a.report_only:
        for size in a.sizes.split(","):
            steps = bench.run_of(size)["steps"]
            old = {k: v["peak_rss_mb"] for k, v in steps.items() if "vmhwm_mb" not in v and "peak_rss_mb" in v}
            for step in list(steps):
                floored = step in old and old[step] <= 1.02 * min(old.values())
                if (a.only and step in a.only.split(",")) or (a.redo_floored and floored):
                    steps.pop(step)
        if a.neo4j_local and not bench.neo4j:
            bench.start_neo4j()
        try:
            bench.results["machine"] = {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total
                                                                                   / 2**30, 1)}
            for size in a.sizes.split(","):
                bench.run_size(size)
        finally:
            bench.stop_neo4j()
            if a.clean:
                shutil.rmtree(bench.work, ignore_errors=True)
    print(write_report(bench.results, write_results_md=a.write, png=Path(a.plot) if a.plot else None))


if __name__ == "__main__":
    main()
