"""Connecting to Ray: a real cluster when given an address, else a local one, quietly.

``ray_session(address)`` is what every Ray-backed command runs inside. An address
(``--ray-address``, or ``RAY_ADDRESS`` which ``ray.init`` reads itself) joins an existing
cluster; without one a local cluster is started for this process only (dashboard off,
Ray's own logs at ERROR, workers' stdout not echoed) and shut down on exit. A session
opened by someone else (a test, a notebook that already called ``ray.init``) is reused and
left running. The local cluster gets at least ``cpus`` CPUs so that ``--workers N`` actors
of one CPU each never wait forever for cores a laptop does not have (they then share them).
``pack_directory``/``unpack_directory`` ship a directory's files to workers as bytes, so no
storage shared between machines is needed (batch payloads, trained artifacts).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Environment for Ray's own processes: no usage-stats prompt, no accelerator-env warning.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}


def thread_env(threads: int) -> dict[str, str]:
    """Environment pinning the BLAS/OpenMP pools of a worker process to ``threads``."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def pack_directory(directory: Path) -> bytes:
    """The directory's files as an uncompressed tar (arrays are already compressed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(directory), arcname=".")
    return buffer.getvalue()


def unpack_directory(data: bytes, target: Path) -> None:
    """Extract ``pack_directory``'s bytes; the ``data`` filter refuses links and paths outside."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(target, filter="data")


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a HOST:PORT (or ray://HOST:PORT) nobody listens on; Ray itself
    keeps retrying for minutes. ``auto`` and other non-host forms are left to Ray."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Ray cluster at {address}: {exc}") from exc


@contextmanager
def ray_session(address: str | None = None, cpus: int = 1) -> Iterator[None]:
    """Inside: ``ray`` is initialised (joined, started locally, or reused as found)."""
    import ray

    if ray.is_initialized():
        yield
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        check_reachable(address)
    kwargs: dict = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        kwargs["num_cpus"] = max(os.cpu_count() or 1, cpus)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConnectionError(f"cannot connect to Ray at {address or 'a new local cluster'}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()
