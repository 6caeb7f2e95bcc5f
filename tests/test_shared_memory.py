"""A bundle's arrays are shared, not copied: real gunicorn workers (``kgrec serve``) and real Ray
actors (``RayEngine``) map the very files of the bundle directory read-only, so their pages are
the page cache's, one copy per machine; an actor that does not see the driver's files gets them
sent instead, with the same answers; a tampered bundle is refused by the actors in one line.

What is checked is the mapping itself (``/proc/<pid>/maps``), not a memory figure: sizes are for
``benchmarks/serve_memory.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.batch import ray_engine
from kgrec.recommenders.batch.batch_tasks import RecommendOptions, recommend_block
from kgrec.recommenders.batch.engines import BatchError, LocalEngine, Payload
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from kgrec.recommenders.serving.query import Query
from kgrec.recommenders.serving.server_loading import load_server
from tests.serve_fixtures import serving


@pytest.fixture(scope="module")
def bundle(snapshot: GraphSnapshot, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fitted = fit_models(snapshot, ["graph_walk", "itemcf", "als"], seed=3)
    return save_bundle(tmp_path_factory.mktemp("shared") / "bundle", snapshot, fitted, seed=3, key=None)


def mapped_npz(pid: int) -> dict[str, str]:
    """The ``.npz`` archives process ``pid`` maps, with their permissions (``r--s``: read-only, shared)."""
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].endswith(".npz"):
            out[parts[5]] = parts[1]
    return out


#: Archives every process serving the bundle holds: the snapshot's (interactions and the rest),
#: item-CF's and the walk's similarities, ALS's factors.
HELD = ("snapshot/arrays.npz", "models/itemcf/arrays.npz", "models/als/arrays.npz", "models/graph_walk/arrays.npz")


def bundle_arrays(bundle: Path) -> set[str]:
    return {os.path.abspath(bundle / name) for name in HELD}


def test_gunicorn_workers_map_the_bundle_files_themselves(bundle: Path, tmp_path: Path) -> None:
    with serving(bundle, f"memory://{tmp_path / 'g'}", tmp_path, workers=2) as (_port, proc):
        master = psutil.Process(proc.pid)
        for _ in range(100):  # the workers start after the master answers through the first one
            workers = master.children()
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2
        arrays = bundle_arrays(bundle)
        in_master = mapped_npz(master.pid)
        assert arrays <= set(in_master)
        assert all(f.startswith(str(bundle)) for f in in_master)
        for w in workers:
            mine = mapped_npz(w.pid)
            assert set(mine) == set(in_master), "a worker maps other array files than the master"
            assert all(perms.startswith("r") and perms[1] == "-" and perms.endswith("s") for perms in mine.values())


def mapped_block(server: Any, users: Sequence[str], options: Any, states: Any = None) -> list[tuple[int, list[str]]]:
    """Block task (sent to the actors by value): this process's pid and mapped ``.npz`` archives."""
    import os as _os
    from pathlib import Path as _Path

    maps = _Path(f"/proc/{_os.getpid()}/maps").read_text().splitlines()
    files = sorted({line.split(maxsplit=5)[5] for line in maps if line.endswith(".npz") and len(line.split()) == 6})
    return [(_os.getpid(), files) for _ in users]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from kgrec.embeddings.ray_cluster import ray_session

    with ray_session(cpus=2):
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield


def _actors_maps(engine: ray_engine.RayEngine, users: list[str]) -> dict[int, list[str]]:
    return dict(result for _, result in engine.run(mapped_block, None, users))


def test_ray_actors_map_the_drivers_files_without_hashing_them_again(ray_cluster: None, bundle: Path,
                                                                     snapshot: GraphSnapshot) -> None:
    server = load_server(bundle)
    assert server.seal is not None and server.seal.identities
    users = list(snapshot.users.ids[:8])
    options = RecommendOptions(Query("", 5))
    expected = list(LocalEngine(Payload(load=load_server, loaded=server)).run(recommend_block, options, users))
    payload = Payload(load=load_server, directory=bundle, loaded=server, verified=server.seal)
    with ray_engine.RayEngine(payload, workers=2, block=1) as engine:
        by_actor = _actors_maps(engine, users)
        assert list(engine.run(recommend_block, options, users)) == expected
    assert len(by_actor) == 2
    arrays = bundle_arrays(bundle)
    for files in by_actor.values():
        assert arrays <= set(files) and all(f.startswith(str(bundle)) for f in files)


def test_actors_that_do_not_see_the_files_are_sent_them(ray_cluster: None, bundle: Path, snapshot: GraphSnapshot,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """As on another machine: the identities the driver sends match nothing the actors see."""
    real = ray_engine.file_identities
    monkeypatch.setattr(ray_engine, "file_identities", lambda d: {k: v._replace(inode=-1) for k, v in real(d).items()})
    server = load_server(bundle)
    users = list(snapshot.users.ids[:6])
    options = RecommendOptions(Query("", 5))
    expected = list(LocalEngine(Payload(load=load_server, loaded=server)).run(recommend_block, options, users))
    with ray_engine.RayEngine(Payload(load=load_server, directory=bundle, verified=server.seal), workers=2,
                              block=1) as engine:
        by_actor = _actors_maps(engine, users)
        assert list(engine.run(recommend_block, options, users)) == expected
    for files in by_actor.values():
        assert files and not any(f.startswith(str(bundle)) for f in files)


def test_actors_refuse_a_tampered_bundle_in_one_line(ray_cluster: None, bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(bundle, tmp_path / "b"))
    path = copy / "models" / "itemcf" / "arrays.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(BatchError) as err:
        ray_engine.RayEngine(Payload(load=load_server, directory=copy), workers=2)
    message = str(err.value)
    assert "\n" not in message and "models/itemcf/arrays.npz" in message and "SHA-256" in message
