"""Read-your-writes with real processes: ``kgrec serve`` with two gunicorn workers, on both stores.

Every acknowledged write (feedback, a dislike, a hidden flag, a new user) shows at the next
request whichever worker answers it, and after a restart; ``/metrics`` adds up every worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from tests.api_fixtures import API_KEY
from tests.serve_fixtures import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def call(url: str, method: str = "GET", body: object = None, headers: dict | None = None) -> tuple[int, dict, Message]:
    """(status, JSON body, headers); header names are looked up whatever their case (HTTP's rule:
    the asgi worker sends them in lower case)."""
    data = None if body is None else json.dumps(body).encode()
    req = Request(url, data=data, method=method, headers={"Connection": "close", **(headers or {})})
    try:
        with urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), resp.headers
    except HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers


class Served:
    """A ``kgrec serve`` process with two workers; restartable on the same port."""

    def __init__(self, bundle: Path, store: str, tmp: Path) -> None:
        self.port, self.tmp = free_port(), tmp
        self.metrics = tmp / "metrics"
        self.cmd = [sys.executable, "-c", "from kgrec.cli import main; main()", "serve", "--bundle", str(bundle),
                    "--store", store, "--port", str(self.port), "--workers", "2", "--threads", "2"]
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.metrics.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KGREC_API_KEY": API_KEY,
               "PROMETHEUS_MULTIPROC_DIR": str(self.metrics)}
        self.log = (self.tmp / "serve.out").open("ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.tmp, env=env, stdout=self.log, stderr=subprocess.PIPE)
        wait_for(f"{self.base}/v1/health", self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def items(self, user: str, query: str = "") -> list[str]:
        status, body, _ = call(f"{self.base}/v1/users/{user}/recommendations?k=10{query}")
        assert status == 200, body
        return [r["item"] for r in body["recommendations"]]


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    graph = generate(users=80, items=120, seed=9)
    url = f"memory://{tmp_path / 'g'}" if request.param == "memory" else request.getfixturevalue("neo4j_uri")
    with open_store(url) as store:
        store.clear()
        store.load(graph.records)
        snap = store.snapshot()
    bundle = save_bundle(tmp_path / "bundle", snap, fit_models(snap, ["graph_walk", "itemcf"], seed=1))
    served = Served(bundle, url, tmp_path)
    served.start()
    try:
        yield served
    finally:
        served.stop()
        if request.param == "neo4j":
            with open_store(url) as store:
                store.clear()


def test_every_worker_reads_every_acknowledged_write(server: Served) -> None:
    base = server.base
    top = server.items("u0003")[0]
    status, _, _ = call(f"{base}/v1/interactions", "POST", [{"user": "u0003", "item": top, "weight": 3}], AUTH)
    assert status == 201
    assert sum(top in server.items("u0003") for _ in range(30)) == 0

    disliked = server.items("u0004")[0]
    status, _, _ = call(f"{base}/v1/interactions", "POST", [{"user": "u0004", "item": disliked, "type": "dislike"}],
                        AUTH)
    assert status == 201
    assert sum(disliked in server.items("u0004") for _ in range(30)) == 0

    hidden = server.items("u0005")[0]
    assert call(f"{base}/v1/items/{hidden}", "PATCH", {"hidden": True}, AUTH)[0] == 200
    users = ["u0005", "u0006", "u0007", "newbie"]
    assert sum(hidden in server.items(u) for u in users for _ in range(8)) == 0
    similar = [call(f"{base}/v1/items/{server.items('u0006')[0]}/similar?k=20")[1] for _ in range(6)]
    assert all(hidden not in [s["item"] for s in body["similar"]] for body in similar)
    assert call(f"{base}/v1/items/{hidden}")[1]["hidden"] is True

    for n in range(10):  # one at a time: never a 503, and the next read (any worker) finds it
        status, body, _ = call(f"{base}/v1/users", "POST", {"id": f"new-{n}", "attrs": {"n": n}}, AUTH)
        assert status == 201, body
        for _ in range(4):
            got = call(f"{base}/v1/users/new-{n}")
            assert got[0] == 200 and got[1]["attrs"] == {"n": n}

    server.stop()
    server.start()
    assert top not in server.items("u0003") and disliked not in server.items("u0004")
    assert all(hidden not in server.items(u) for u in users)


def test_metrics_add_up_every_worker_and_requests_carry_ids(server: Served) -> None:
    base = server.base
    n = 40
    for k in range(n):
        status, _, headers = call(f"{base}/v1/users/u{k % 20:04d}/recommendations?k=3&model=itemcf",
                                  headers={"X-Request-ID": f"req-{k}"})
        assert status == 200 and headers["X-Request-ID"] == f"req-{k}"
    status, _, headers = call(f"{base}/v1/users/u0001/recommendations?k=0")
    assert status == 400 and re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    with urlopen(f"{base}/metrics", timeout=20) as resp:
        text = resp.read().decode()
    ok = [line for line in text.splitlines()
          if line.startswith("kgrec_requests_total{") and 'endpoint="/v1/users/<user_id>/recommendations"' in line
          and 'status="200"' in line and 'model="itemcf"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in ok) == n
    assert "kgrec_request_seconds_bucket" in text and 'kgrec_items_served_total{' in text
    assert re.search(r'kgrec_requests_total\{[^}]*status="400"[^}]*\} 1\.0', text)
    workers = {p.name.rsplit("_", 1)[1] for p in server.metrics.glob("counter_*.db")}
    assert len(workers) == 2, f"both workers should have answered: {workers}"
    server.stop()
    access = [json.loads(line) for line in (server.tmp / "serve.out").read_text().splitlines() if line.startswith("{")]
    assert {f"req-{k}" for k in range(n)} <= {a["request_id"] for a in access}
    assert all(a["status"] == 200 and a["model"] == "itemcf" for a in access if a["request_id"].startswith("req-"))
