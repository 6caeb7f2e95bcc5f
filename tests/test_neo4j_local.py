"""deploy/neo4j/neo4j-local starts a real server, prints its URI last, and stops it cleanly.

Starting a JVM takes tens of seconds, so everything is checked on one instance. The test
needs the assembled jars (``deploy/neo4j/target/lib``, built by ``make test``); without
them it skips locally, and fails under CI, which must never skip the Neo4j suite.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "neo4j" / "neo4j-local"
STAMP = ROOT / "deploy" / "neo4j" / "target" / "lib" / ".complete"

pytestmark = pytest.mark.neo4j


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie its new parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def listening(port: int) -> bool:
    """Whether something listens on the loopback port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def lingering(port: int) -> bool:
    """Whether a plain bind (no SO_REUSEADDR) fails: closed connections still hold the port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture
def instance(tmp_path: Path):
    if not STAMP.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but deploy/neo4j/target/lib is not assembled")
        pytest.skip("deploy/neo4j/target/lib is not assembled (make test does it)")
    directory = tmp_path / "neo4j"
    yield directory
    run("stop", "--dir", str(directory))  # never leave a server behind, even when a check failed


def test_start_prints_uri_last_and_stop_is_clean(instance: Path) -> None:
    import neo4j

    assert run("status", "--dir", str(instance)).returncode == 3

    started = run("start", "--dir", str(instance))
    assert started.returncode == 0, started.stderr
    uri = started.stdout.strip().splitlines()[-1]
    assert uri.startswith("bolt://127.0.0.1:")
    with neo4j.GraphDatabase.driver(uri) as driver:  # auth is off without --password
        records, _, _ = driver.execute_query("RETURN 40 + 2 AS answer", database_="neo4j")
        assert records[0]["answer"] == 42

    status = run("status", "--dir", str(instance))
    assert status.returncode == 0 and uri in status.stdout
    pid = int((instance / "neo4j.pid").read_text())

    again = run("start", "--dir", str(instance))  # idempotent: the running server's URI
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == uri

    conf = (instance / "conf" / "neo4j.conf").read_text()
    assert "dbms.security.auth_enabled=false" in conf and not re.search(r"@[A-Z_]+@", conf)

    # A client stays connected across the restart, as `kgrec serve` does: the stopped server's
    # half-closed connections linger on its port (FIN-WAIT-2, then TIME-WAIT).
    client = neo4j.GraphDatabase.driver(uri)
    client.execute_query("RETURN 1", database_="neo4j")
    stopped = run("stop", "--dir", str(instance))
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(pid)
    assert "Stopped." in (instance / "logs" / "neo4j.log").read_text()  # a clean shutdown, not a kill
    assert run("status", "--dir", str(instance)).returncode == 3
    port = int(uri.rsplit(":", 1)[1])
    assert not listening(port)
    assert run("stop", "--dir", str(instance)).returncode == 0  # stopping twice is fine

    assert lingering(port)  # what made the old free-port check move to a new port
    restarted = run("start", "--dir", str(instance))
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.strip().splitlines()[-1] == uri  # back on the port it had
    client.execute_query("RETURN 1", database_="neo4j")  # the same client carries on
    client.close()
    assert run("stop", "--dir", str(instance)).returncode == 0


def test_bad_option_fails_with_a_message(tmp_path: Path) -> None:
    out = run("start", "--dir", str(tmp_path / "x"), "--port", "not-a-port", timeout=30)
    assert out.returncode == 2 and "--port" in out.stderr


def test_with_neo4j_stops_the_server_and_keeps_the_exit_code(instance: Path, tmp_path: Path) -> None:
    """A failing command still gets its server stopped and its exit code passed on."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, sys, neo4j\n"
        "uri = os.environ['KGREC_TEST_NEO4J_URI']\n"
        "with neo4j.GraphDatabase.driver(uri) as d:\n"
        "    d.verify_connectivity()\n"
        "print('URI', uri, flush=True)\n"
        "sys.exit(7)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KGREC_NEO4J_URI"}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [str(ROOT / "deploy" / "neo4j" / "with-neo4j"), sys.executable, str(probe)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert out.returncode == 7, out.stderr
    uri = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("URI "))
    assert not list(tmp_path.glob("kgrec-neo4j.*"))  # the throwaway instance is gone
    port = int(uri.rsplit(":", 1)[1])
    assert not listening(port)  # and its server with it


def test_with_neo4j_uses_your_server_when_kgrec_neo4j_uri_is_set(tmp_path: Path) -> None:
    env = {**os.environ, "KGREC_NEO4J_URI": "bolt://127.0.0.1:1", "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [str(ROOT / "deploy" / "neo4j" / "with-neo4j"), "sh", "-c", 'echo "$KGREC_TEST_NEO4J_URI"; exit 5'],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )
    assert out.returncode == 5
    assert out.stdout.strip() == "bolt://127.0.0.1:1"
    assert not list(tmp_path.glob("kgrec-neo4j.*"))  # nothing was started
