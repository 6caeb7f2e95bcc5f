"""``kgrec serve`` as a real process on a free loopback port, for the tests that talk HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

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


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL if it does not end in time."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(bundle: Path, store: str, cwd: Path, *extra: str, env: dict[str, str] | None = None,
            workers: int = 2, threads: int = 2) -> Iterator[tuple[int, subprocess.Popen]]:
    """``kgrec serve`` (gunicorn, or Flask's server with ``--dev`` in ``extra``) until the block ends;
    yields (port, process) once ``/v1/health`` answers."""
    port = free_port()
    cmd = [sys.executable, "-c", "from kgrec.cli import main; main()", "serve", "--bundle", str(bundle),
           "--store", store, "--port", str(port), "--workers", str(workers), "--threads", str(threads), *extra]
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/health", proc)
        yield port, proc
    finally:
        stop(proc)
