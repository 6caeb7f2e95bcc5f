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
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 60.0, log: Path | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace") if log is not None else proc.stderr.read().decode()
            raise AssertionError(f"server exited with {proc.returncode}: {said[-2000:]}")
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
    yields (port, process) once ``/v1/health`` answers. Its log (stderr) goes to ``serve-PORT.log``
    in ``cwd``: a pipe nobody reads would stop a chatty server once full."""
    port = free_port()
    cmd = [sys.executable, "-c", "from kgrec.cli import main; main()", "serve", "--bundle", str(bundle),
           "--store", store, "--port", str(port), "--workers", str(workers), "--threads", str(threads), *extra]
    log = Path(cwd) / f"serve-{port}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/health", proc, log=log)
        yield port, proc
    finally:
        stop(proc)


@dataclass
class RawAnswer:
    """What a server sent back to raw bytes: the status (0 when nothing came), headers (lower-case
    names), body, and whether the server closed the connection."""

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool

    def json(self) -> dict:
        return json.loads(self.body)


def parse_answer(data: bytes, closed: bool) -> RawAnswer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:]) if k}
    return RawAnswer(status, headers, body, closed)


def read_answer(sock: socket.socket, wait: float = 30.0) -> RawAnswer:
    """Read until the server closes (or ``wait`` seconds pass: a hang detector, not a latency bound)."""
    sock.settimeout(wait)
    data, closed = b"", False
    try:
        while chunk := sock.recv(65536):
            data += chunk
        closed = True
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    return parse_answer(data, closed)


def raw_request(port: int, payload: bytes, wait: float = 30.0) -> RawAnswer:
    """Send ``payload`` as it is on a new connection and read the answer (see ``read_answer``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        with suppress(BrokenPipeError, ConnectionResetError):  # refused before it was all sent
            sock.sendall(payload)
        return read_answer(sock, wait)


def http_bytes(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    """A well-formed HTTP/1.1 request that asks the server to close the connection after it."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + (body or b"")
