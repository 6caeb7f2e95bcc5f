"""kge trained data-parallel on a 2-worker local Ray Train cluster, served like local training."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.pykeen_setup import TrainConfig
from kgrec.embeddings.ray_train import shard
from kgrec.embeddings.triples import build_triples
from kgrec.graph.store_factory import open_store
from kgrec.loaders.ingest import write_records
from kgrec.loaders.synthetic import SyntheticGraph

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def graph_url(synthetic: SyntheticGraph, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"memory://{tmp_path_factory.mktemp('kge-ray') / 'graph'}"
    with open_store(url) as store:
        write_records(store, synthetic.records)
    return url


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_shards_are_equal_and_cover_every_triple() -> None:
    parts = [shard(10, 3, rank, seed=4) for rank in range(3)]
    assert {len(p) for p in parts} == {4}
    assert set(np.concatenate(parts).tolist()) == set(range(10))
    assert np.array_equal(parts[1], shard(10, 3, 1, seed=4))
    assert not np.array_equal(parts[1], shard(10, 3, 1, seed=5))


def test_kge_on_two_ray_workers_gives_a_bundle_that_serves(graph_url: str, snapshot, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    _invoke("train", "--store", graph_url, "--models", "kge", "--epochs", "2", "--dim", "16", "--engine", "ray",
            "--workers", "2", "--out", str(out), "--seed", "1", "--no-tune")
    artifact = KGEArtifact.load(out / "models" / "kge" / "artifact")
    m = artifact.metrics
    assert (m["engine"], m["workers"], m["epochs_run"]) == ("ray", 2, 2)
    # The workers trained on different shards; DDP kept their weights identical.
    assert m["replica_max_abs_diff"] == 0.0
    assert 0.0 < m["tail.mrr"] <= 1.0 and m["evaluated_triples"] > 0
    triples = build_triples(snapshot, TrainConfig().triple_options)
    assert set(artifact.entities) == set(triples.entities)
    assert artifact.entity_vectors.shape[0] == len(artifact.entities)
    assert np.isfinite(np.abs(artifact.entity_vectors)).all()
    users = tmp_path / "users.txt"
    users.write_text("u0001\nu0050\n")
    rows = list(csv.DictReader(io.StringIO(_invoke("recommend", "--bundle", str(out), "--model", "kge", "--users",
                                                   str(users), "--k", "5"))))
    assert [r["user"] for r in rows] == ["u0001"] * 5 + ["u0050"] * 5
    assert {r["source"] for r in rows} == {"kge"}


def test_what_ray_training_refuses(graph_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["--models", "itemcf", "--engine", "ray"], "--models has none"),
        (["--models", "kge", "--workers", "2"], "--workers needs --engine ray"),
        (["--models", "kge", "--engine", "ray", "--kge-training-loop", "lcwa"], "every triple of a head"),
        (["--models", "kge", "--engine", "ray", "--set", "kge.validation_fraction=0.1"], "no early stopping"),
    ]
    for args, message in cases:
        result = runner.invoke(main, ["train", "--store", graph_url, "--out", str(tmp_path / "x"), *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert not (tmp_path / "x").exists()


class _Bucket:
    """What the hook reads of a ``dist.GradBucket``: the flat buffer and views of it."""

    def __init__(self, shapes: list[tuple[int, ...]], seed: int) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self._buffer = torch.zeros(sum(int(np.prod(s)) for s in shapes))
        self._grads, at = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            view = self._buffer[at : at + n].view(shape)
            at += n
            view.copy_(torch.randn(shape, generator=g))
            if len(shape) == 2 and shape[0] >= 64:  # an embedding table: most rows untouched
                keep = torch.rand(shape[0], generator=g) < 0.1
                view[~keep] = 0
            self._grads.append(view)

    def gradients(self) -> list:
        return self._grads

    def buffer(self):
        return self._buffer


def _hook_worker(rank: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from kgrec.embeddings.ray_train import row_sparse_allreduce

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    shapes = [(500, 8), (3, 8), (5,)]
    mine, other = _Bucket(shapes, seed=rank), _Bucket(shapes, seed=1 - rank)
    expected = (mine.buffer() + other.buffer()) / 2
    result = row_sparse_allreduce(None, mine).wait()
    torch.save({"expected": expected, "result": result}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_the_row_sparse_hook_averages_like_dense_all_reduce(tmp_path: Path) -> None:
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_hook_worker, args=(port, str(tmp_path / "out")), nprocs=2)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"out.{rank}")
        assert torch.equal(got["result"], got["expected"])
        assert (got["result"][: 500 * 8] == 0).float().mean() > 0.7  # the sparse path ran on a sparse table
