"""``kgrec serve`` for real: gunicorn workers on a loopback port answering HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

import pytest
from click.testing import CliRunner

from api.cli import main
from tests.api_fixtures import API_KEY, fill_store, train_bundle

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urlopen(url, timeout=2) as resp:
                return json.loads(resp.read())
        except (URLError, ConnectionError):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.mark.parametrize("dev", [False, True], ids=["gunicorn", "dev"])
def test_serve_answers_http(snapshot, synthetic, tmp_path, dev):
    bundle = train_bundle(snapshot, tmp_path / "bundle")
    store = fill_store(synthetic.records, tmp_path / "store")
    port = free_port()
    cmd = [sys.executable, "-c", "from api.cli import main; main()", "serve", "--bundle", str(bundle),
           "--store", store, "--port", str(port), "--workers", "2", "--threads", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KGREC_API_KEY": API_KEY}
    proc = subprocess.Popen([*cmd, "--dev"] if dev else cmd, cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        health = wait_for(f"{base}/health", proc)
        assert health["bundle"]["fingerprint"] == snapshot.fingerprint
        user = snapshot.users.ids[0]
        with urlopen(f"{base}/users/{user}/recommendations?k=3") as resp:
            assert len(json.loads(resp.read())["recommendations"]) == 3
        req = Request(f"{base}/users", data=json.dumps({"id": "via-http"}).encode(), method="POST",
                      headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        with urlopen(req) as resp:
            assert resp.status == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_bad_bundle(tmp_path):
    empty = tmp_path / "not-a-bundle"
    empty.mkdir()
    result = CliRunner().invoke(main, ["serve", "--bundle", str(empty), "--store", f"memory://{tmp_path}/s"])
    assert result.exit_code == 1
    assert "KGREC_BUNDLE" in result.output and "manifest.json" in result.output
