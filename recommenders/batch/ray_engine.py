"""``RayEngine``: block tasks on long-lived Ray actors, results in the users' order.

What goes to the workers, once: the payload directory's path and the ``os.stat`` identity of
each of its files. An actor that sees those very files (on the driver's machine, or over a
shared filesystem) loads them where they are, in its constructor (``Payload.load``): a bundle's
arrays are mapped read-only, so the driver and every actor on a machine share one copy in the
page cache, and with ``Payload.verified`` (what the driver verified) the actor compares
identities instead of hashing the files again. Only actors that do not see the files are sent
them, as the bytes of an uncompressed tar put once in Ray's object store (``ray.put``), which
they unpack into their own temporary directory and load (verifying every file): the cluster
needs no shared filesystem (the machines need kgrec installed). Either way a bundle is read
once per actor, not once per block.
Per-user store state (``BatchEngine.run``'s ``state``) is read by the driver as each block is
submitted and travels with that block; workers never connect to the store.

Scheduling: each actor has at most ``DEPTH`` blocks queued; a finished block frees its
actor at once (``ray.wait``), and finished blocks are held until every block before them is
done, then yielded — so output order is the users' order, and at most ``WINDOW`` blocks per
worker are ever held. Each actor reserves ``cpus_per_worker`` CPUs and pins its BLAS/OpenMP
pools to as many threads, so two workers on two cores do not oversubscribe them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kgrec.embeddings.ray_cluster import pack_directory, ray_session, thread_env, unpack_directory
from kgrec.graph.array_files import FileIdentity
from kgrec.recommenders.batch.engines import BatchEngine, BatchError, Block, BlockTask, Payload

#: Blocks queued per actor (one running, one waiting: no idle gap between blocks).
DEPTH = 2
#: Blocks per worker that may run ahead of the next block to yield.
WINDOW = 4


def file_identities(directory: Path) -> dict[str, FileIdentity]:
    """``{relative path: identity}`` of every file under ``directory`` (a stat each, no reads)."""
    return {p.relative_to(directory).as_posix(): FileIdentity.of(p.stat())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _load(load: Any, directory: Path, verified: Any) -> Any:
    return load(directory) if verified is None else load(directory, verified=verified)


class _Worker:
    """One actor: the loaded payload, and the block tasks run against it."""

    def __init__(self, directory: str, identities: dict[str, FileIdentity], load: Any, threads: int,
                 verified: Any) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=threads)
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._load, self._verified = load, verified
        self.busy_cpu = 0.0
        self.context: Any = None
        self.error: str | None = None
        here = Path(directory)
        try:
            same = file_identities(here) == identities
        except OSError:
            same = False
        if same:
            self._try(lambda: _load(load, here, verified))

    def _try(self, load: Any) -> None:
        try:
            self.context = load()
        except Exception as exc:  # reported by the driver in one line (a BundleError is one already)
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"

    def ready(self) -> str:
        """``loaded``, ``elsewhere`` (this actor does not see the driver's files) or the error."""
        return self.error or ("loaded" if self.context is not None else "elsewhere")

    def unpack(self, packed: bytes) -> str:
        """Load the payload from the driver's files, sent as a tar (machines that do not see them)."""
        self._dir = tempfile.TemporaryDirectory(prefix="kgrec-batch-")
        here = Path(self._dir.name)
        unpack_directory(packed, here)
        self._try(lambda: _load(self._load, here, self._verified))
        return self.ready()

    def run(self, task: BlockTask, options: Any, users: list[str], states: list[Any] | None) -> list[Any]:
        started = time.process_time()
        try:
            return task(self.context, users, options, states)
        finally:
            self.busy_cpu += time.process_time() - started

    def busy(self) -> float:
        """CPU seconds this worker has spent inside block tasks (not in Ray's own machinery)."""
        return self.busy_cpu


class RayEngine(BatchEngine):
    """Blocks on ``workers`` Ray actors (a local cluster, or the one at ``address``)."""

    name = "ray"
    needs_directory = True
    default_workers = 2

    def __init__(self, payload: Payload, workers: int = 2, block: int | None = None,
                 address: str | None = None, cpus_per_worker: int = 1) -> None:
        super().__init__(payload, workers, block, address)
        self._stack = ExitStack()
        try:
            self._start(cpus_per_worker)
        except BaseException:
            self._stack.close()
            raise

    def _start(self, cpus: int) -> None:
        import ray

        directory = self.payload.directory
        assert directory is not None
        self._stack.enter_context(ray_session(self.address, cpus=self.workers * cpus))
        identities = file_identities(directory)
        actor = ray.remote(_Worker).options(num_cpus=cpus, runtime_env={"env_vars": thread_env(cpus)})
        # Ray types an actor's remote methods only under @ray.method, which would import Ray with this
        # module: the handles are used untyped.
        self._actors: list[Any] = [actor.remote(str(directory.absolute()), identities, self.payload.load, cpus,
                                                self.payload.verified) for _ in range(self.workers)]
        self._stack.callback(self._kill)
        try:
            states = ray.get([a.ready.remote() for a in self._actors])
            elsewhere = [a for a, state in zip(self._actors, states, strict=True) if state == "elsewhere"]
            if elsewhere:  # actors on machines without the driver's files: send them, once
                packed = ray.put(pack_directory(directory))
                states = [s for s in states if s != "elsewhere"] + ray.get([a.unpack.remote(packed) for a in elsewhere])
                del packed
        except ray.exceptions.RayError as exc:
            raise BatchError(f"Ray workers could not load {directory}: {_first_line(exc)}") from exc
        failed = [s for s in states if s != "loaded"]
        if failed:
            raise BatchError(f"Ray workers could not load {directory}: {failed[0]}")

    def _kill(self) -> None:
        import ray

        for a in self._actors:
            ray.kill(a)

    def _run_blocks(self, task: BlockTask, options: Any, blocks: Iterator[Block]) -> Iterator[list[Any]]:
        import ray

        load = [0] * len(self._actors)
        inflight: dict[Any, tuple[int, int]] = {}
        finished: dict[int, Any] = {}
        submitted = yielded = 0
        pending: Block | None = next(blocks, None)
        while pending is not None or yielded < submitted:
            while pending is not None and submitted - yielded < WINDOW * len(self._actors):
                a = min(range(len(load)), key=load.__getitem__)
                if load[a] >= DEPTH:
                    break
                inflight[self._actors[a].run.remote(task, options, *pending)] = (submitted, a)
                load[a] += 1
                submitted += 1
                pending = next(blocks, None)
            if yielded in finished:
                yield _result(finished.pop(yielded))
                yielded += 1
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                index, a = inflight.pop(ref)
                load[a] -= 1
                finished[index] = ref

    def busy_cpu(self) -> list[float]:
        """Each worker's CPU seconds inside block tasks so far (benchmarks: parallel efficiency)."""
        import ray

        return ray.get([a.busy.remote() for a in self._actors])

    def close(self) -> None:
        self._stack.close()


def _result(ref: Any) -> list[Any]:
    """A block's results; an error of the task itself is re-raised as it is, a lost worker
    (crash, out of memory, node gone) becomes a ``BatchError``."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError:
        raise
    except ray.exceptions.RayError as exc:
        raise BatchError(f"a Ray worker was lost: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
