"""Batch work over many users behind one interface: in this process, or on Ray actors.

A job is a *payload* — what every worker loads once (a bundle directory, or fitted models
packed the same way) — and a *block task*: a module-level function ``task(context, users,
options, states) -> one result per user``, where ``context`` is the loaded payload and
``states`` each user's value of the caller's ``state`` function (what the store knows beyond
the bundle), computed in this process as the block is handed out, or None without one: the
store is read where its credentials are, and workers need no access to it. An engine cuts
the users into blocks, runs the task on each block wherever it runs them, and yields
``(user, result)`` in the order the users were given, whatever order the blocks finish in.
So the output of every engine is the output of one process, byte for byte, and the caller
(CSV writer, write-back, metrics) is the same code for all of them. Both engines show one
tqdm bar (users done) on stderr.

``LocalEngine`` runs the blocks here; ``recommenders.batch.ray_engine.RayEngine`` on long-lived
Ray actors, each loading the payload once. ``recommenders.batch.engine_choice`` maps the CLI's
``--engine`` names to the classes (this module knows no subclass but its own).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

#: (context, users, options, states) -> one result per user, in the users' order.
BlockTask = Callable[[Any, Sequence[str], Any, Sequence[Any] | None], list[Any]]
#: A block as handed to ``_run_blocks``: its users and their states (or None).
Block = tuple[list[str], list[Any] | None]
#: Blocks per worker the users are cut into by default: enough to even out slow blocks,
#: few enough that per-block overhead (a Ray round trip, about a millisecond) stays small.
BLOCKS_PER_WORKER = 8
MAX_BLOCK = 256


@dataclass(frozen=True)
class Payload:
    """What the block tasks read. ``load(directory)`` builds it (a module-level function, so
    remote workers can call it); ``loaded`` is this process's copy when it already has one;
    ``verified`` what this process verified of the directory's files (a bundle's
    ``Server.seal``): workers then call ``load(directory, verified=verified)`` and compare the
    files' ``os.stat`` identities instead of hashing them again."""

    load: Callable[..., Any]
    directory: Path | None = None
    loaded: Any = None
    verified: Any = None


class BatchError(RuntimeError):
    """The workers could not start or were lost (not an error of the per-user work itself)."""


def block_size(users: int, workers: int) -> int:
    """Default users per block for ``users`` spread over ``workers``."""
    return max(1, min(MAX_BLOCK, math.ceil(users / (max(1, workers) * BLOCKS_PER_WORKER))))


def blocks_of(users: Sequence[str], size: int) -> list[list[str]]:
    return [list(users[i : i + size]) for i in range(0, len(users), size)]


class BatchEngine(ABC):
    """Runs block tasks over a payload; subclasses decide where the blocks run."""

    name: ClassVar[str]
    #: Whether the engine needs ``Payload.directory`` (it ships files to other processes).
    needs_directory: ClassVar[bool] = False
    default_workers: ClassVar[int] = 1

    def __init__(self, payload: Payload, workers: int = 1, block: int | None = None,
                 address: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if self.needs_directory and payload.directory is None:
            raise ValueError(f"the {self.name} engine ships the payload's files; the payload has no directory")
        self.payload = payload
        self.workers = workers
        self.block = block
        self.address = address

    def run(self, task: BlockTask, options: Any, users: Sequence[str], desc: str = "users",
            state: Callable[[str], Any] | None = None) -> Iterator[tuple[str, Any]]:
        """``(user, result)`` for every user, in the given order, with a progress bar;
        ``state(user)`` is read here for each user when its block is handed out."""
        from tqdm import tqdm

        blocks = blocks_of(users, self.block or block_size(len(users), self.workers))
        work = ((b, None if state is None else [state(u) for u in b]) for b in blocks)
        with tqdm(total=len(users), unit="user", desc=desc, disable=None) as bar:
            for block, results in zip(blocks, self._run_blocks(task, options, work), strict=True):
                if len(results) != len(block):
                    raise RuntimeError(f"{task.__name__} returned {len(results)} results for {len(block)} users")
                yield from zip(block, results, strict=True)
                bar.update(len(block))

    @abstractmethod
    def _run_blocks(self, task: BlockTask, options: Any, blocks: Iterator[Block]) -> Iterator[list[Any]]:
        """Each block's results, in the blocks' order (``blocks`` is consumed lazily)."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> BatchEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class LocalEngine(BatchEngine):
    """Every block in this process, one after the other (``workers`` only sizes the blocks)."""

    name = "local"

    def __init__(self, payload: Payload, workers: int = 1, block: int | None = None,
                 address: str | None = None) -> None:
        super().__init__(payload, workers, block, address)
        self._context: Any = payload.loaded

    def _run_blocks(self, task: BlockTask, options: Any, blocks: Iterator[Block]) -> Iterator[list[Any]]:
        if self._context is None:
            assert self.payload.directory is not None, "a payload needs a directory or a loaded copy"
            self._context = self.payload.load(self.payload.directory)
        for users, states in blocks:
            yield task(self._context, users, options, states)

    def close(self) -> None:
        """Nothing to release: the blocks ran in this process."""
