"""Fault injection without Neo4j: ``kill -9`` in the middle of ``kgrec load`` into the memory
store, and damaged store files, each answered in one line by the CLI."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import generate
from tests.serve_fixtures import ROOT

#: Big enough that compaction takes a while (the kill must land inside it), small enough to be quick.
LOAD = (("users", 3000), ("items", 2000), ("seed", 11))


def kgrec_load(store: str, load: tuple[tuple[str, int], ...] = LOAD) -> subprocess.Popen:
    args = ["load", "synthetic", *(f"--{k}={v}" for k, v in load), "--store", store, "--no-progress"]
    return subprocess.Popen([sys.executable, "-c", "from kgrec.cli import main; main()", *args],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it finished first."""
    while proc.poll() is None:
        if ready():
            proc.kill()
            proc.wait()
            return
        time.sleep(0.001)
    pytest.fail(f"the load ended (exit {proc.returncode}) before it could be interrupted")


def fingerprint(store_url: str) -> str:
    with open_store(store_url) as store:
        return store.snapshot().fingerprint


@cache
def expected_fingerprint(load: tuple[tuple[str, int], ...] = LOAD) -> str:
    """The fingerprint of the graph ``kgrec_load(store, load)`` writes, built in process."""
    return build_snapshot(generate(**dict(load)).records).fingerprint


def test_kill_9_during_a_memory_store_load_then_rerun(tmp_path):
    """Killed while compaction writes the new document: no half document, the stale temp file
    is removed when the store is next opened, and the rerun gives the same graph."""
    store_dir = tmp_path / "g"
    proc = kgrec_load(f"memory://{store_dir}")
    kill_when(proc, lambda: store_dir.is_dir() and any(store_dir.glob(".graph-*.tmp")))
    assert not (store_dir / "graph.json.gz").exists()
    rerun = kgrec_load(f"memory://{store_dir}")
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()[-2000:]
    assert fingerprint(f"memory://{store_dir}") == expected_fingerprint()
    assert sorted(p.name for p in store_dir.iterdir()) == ["graph.json.gz", "graph.lock"]


def _entry(d, ops: bytes = b"[]") -> bytes:
    """A journal line on top of the store's document, as a flush writes it."""
    with gzip.open(d / "graph.json.gz") as fh:
        generation = json.loads(fh.read())["generation"]
    return b'{"base": "' + generation.encode() + b'", "ops": ' + ops + b"}\n"


def _stats(store_dir) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["stats", "--store", f"memory://{store_dir}"])
    return result.exit_code, result.output


@pytest.fixture()
def small_store(tmp_path):
    d = tmp_path / "g"
    with open_store(f"memory://{d}") as store:
        store.load(generate(users=20, items=30, seed=2).records)
    with open_store(f"memory://{d}") as store:
        store.upsert_users([])  # nothing: the journal stays absent
    return d


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda d: (d / "graph.json.gz").write_bytes((d / "graph.json.gz").read_bytes()[:200]), "unreadable"),
    (lambda d: (d / "graph.json.gz").write_bytes(gzip.compress(b'{"format": "something else"}')), "not a kgrec"),
    (lambda d: (d / "graph.json.gz").write_bytes(gzip.compress(b"[1, 2")), "unreadable"),
    (lambda d: (d / "journal.jsonl").write_bytes(_entry(d) + b"{not json}\n"), "corrupt line 2"),
    (lambda d: (d / "journal.jsonl").write_bytes(_entry(d, b'[["users", [[7, {}]]]]')), "corrupt line 1"),
    (lambda d: (d / "graph.json.gz").unlink() or (d / "graph.json.gz").mkdir(), "graph.json.gz"),
])
def test_damaged_store_files_are_one_line_errors(small_store, damage, needle):
    damage(small_store)
    code, output = _stats(small_store)
    assert code == 1
    assert len(output.strip().splitlines()) == 1 and output.startswith("Error: ") and needle in output, output
    assert "Traceback" not in output
