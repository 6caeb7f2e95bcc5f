"""Data-parallel KGE training on Ray Train (``TorchTrainer``, DDP): ``kgrec train --engine ray``.

PyKEEN's pipeline runs in one process, so this module drives PyKEEN's pieces itself on
every worker: the same model (``embeddings.pykeen_setup.build_model``, seeded alike; DDP also
broadcasts rank 0's initial weights), the same sLCWA training loop class with its own
batch construction and ``_process_batch`` loss (the shared-negatives loop of
``embeddings.shared_negatives`` by default, or PyKEEN's ``slcwa``), and Adam. Each worker
trains on its shard of the training triples — a seeded permutation cut into equal strides,
padded by wrapping so every worker runs the same number of steps — with batches of
``batch_size / workers``, so one optimiser step still sees ``batch_size`` triples and an
epoch still makes the same number of steps as one process. The loss is computed inside a
small ``torch.nn.Module`` wrapped by DDP (``ray.train.torch.prepare_model``), so every
backward pass all-reduces the gradients (gloo on CPUs, NCCL on GPUs) and every worker's Adam
takes the same step; PyKEEN's parameter constraints are applied after it on every worker.

Entity and relation tables are replicated on every worker (DDP), so the largest graph is
what one worker's memory holds; the gain is in compute per epoch. Rank 0 evaluates the
test cut like the pipeline does (filtered rank-based metrics) and sends the artifact —
``KGEArtifact.save``'s files as tar bytes — to a small mailbox actor the driver created, so
no storage shared between machines is needed. Not supported here: early stopping on a
validation cut, and the ``lcwa`` loop (1-vs-all labels need every triple of a head on one
worker); both are refused with a clear message.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.pykeen_setup import TrainConfig, TrainResult, link_metrics
from kgrec.embeddings.triples import INTERACTED, LabeledTriples

#: Loops whose batches can be sharded: each positive's loss needs only that triple.
SHARDABLE_LOOPS = ("shared", "slcwa")


def check_config(cfg: TrainConfig) -> None:
    """Refuse what the data-parallel path does not do, before any cluster starts."""
    if cfg.training_loop not in SHARDABLE_LOOPS:
        raise ValueError(f"--engine ray trains the {' and '.join(SHARDABLE_LOOPS)} loops; {cfg.training_loop!r} "
                         "needs every triple of a head on one worker (use --engine local)")
    if cfg.validation_fraction > 0 and cfg.early_stopping:
        raise ValueError("--engine ray has no early stopping; set kge.validation_fraction=0 or use --engine local")


def shard(n: int, workers: int, rank: int, seed: int) -> np.ndarray:
    """Row indices of ``rank``'s shard: equal sizes, together every row at least once."""
    per = -(-n // workers)
    order = np.resize(np.random.default_rng(seed).permutation(n), per * workers)
    return order[rank::workers]


def _mapped(t: LabeledTriples, entity_to_id: dict[str, int], relation_to_id: dict[str, int]) -> np.ndarray:
    if not len(t):
        return np.zeros((0, 3), dtype=np.int64)
    e = np.array([entity_to_id[x] for x in t.triples[:, 0]] + [entity_to_id[x] for x in t.triples[:, 2]],
                 dtype=np.int64).reshape(2, -1)
    r = np.array([relation_to_id[x] for x in t.triples[:, 1]], dtype=np.int64)
    return np.stack([e[0], r, e[1]], axis=1)


class _Mailbox:
    """Where rank 0 leaves progress and the packed artifact for the driver."""

    def __init__(self) -> None:
        self.epochs = 0
        self.artifact: bytes | None = None

    def epoch_done(self, epoch: int) -> None:
        self.epochs = epoch

    def deliver(self, packed: bytes) -> None:
        self.artifact = packed

    def progress(self) -> int:
        return self.epochs

    def take(self) -> bytes | None:
        return self.artifact


def train_triples_on_ray(training: LabeledTriples, testing: LabeledTriples, validation: LabeledTriples,
                         cfg: TrainConfig, fingerprint: str = "") -> TrainResult:
    """``embeddings.train.train_triples`` on ``cfg.workers`` Ray Train workers."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from kgrec.embeddings.ray_cluster import ray_session, thread_env, unpack_directory

    check_config(cfg)
    started = time.perf_counter()
    entity_to_id = {e: i for i, e in enumerate(training.entities)}
    relation_to_id = {r: i for i, r in enumerate(training.relations)}
    filters = [_mapped(x, entity_to_id, relation_to_id) for x in (training, validation) if len(x)]
    cpus = cfg.worker_cpus or max(1, (os.cpu_count() or 1) // cfg.workers)
    with ray_session(cpus=cfg.workers * cpus), tempfile.TemporaryDirectory(prefix="kgrec-ray-train-") as storage:
        use_gpu = _use_gpu(cfg)
        # Ray types an actor's remote methods only under @ray.method, which would import Ray with this
        # module: the handle is used untyped.
        mailbox: Any = ray.remote(_Mailbox).options(num_cpus=0).remote()
        config = {
            "cfg": cfg.to_dict(), "threads": cpus, "fingerprint": fingerprint, "mailbox": mailbox,
            "training": _mapped(training, entity_to_id, relation_to_id), "entities": training.entities,
            "relations": training.relations, "testing": _mapped(testing, entity_to_id, relation_to_id),
            "filters": filters,
        }
        # ray.train exports Train v2's RunConfig (it takes worker_runtime_env) while v2 is on, the default.
        run_config = RunConfig(  # type: ignore[call-arg]  # mypy sees only ray.train's first, v1 import
            name="kgrec-kge", storage_path=storage, worker_runtime_env={"env_vars": thread_env(cpus)})
        trainer = TorchTrainer(
            _worker_loop, train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cpus, **({"GPU": 1} if use_gpu else {})}),
            run_config=run_config,
        )
        _fit_with_progress(trainer, mailbox, cfg)
        packed = ray.get(mailbox.take.remote())
        if packed is None:
            raise RuntimeError("Ray training finished without an artifact from rank 0")
        with tempfile.TemporaryDirectory(prefix="kgrec-artifact-") as tmp:
            unpack_directory(packed, Path(tmp))
            artifact = KGEArtifact.load(Path(tmp))
    artifact.metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
    return TrainResult(None, None, artifact)


def _use_gpu(cfg: TrainConfig) -> bool:
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.device.startswith("cuda") and gpus < cfg.workers:
        raise ValueError(f"device {cfg.device!r} on {cfg.workers} Ray workers needs {cfg.workers} GPUs; "
                         f"the cluster has {gpus:g}")
    return cfg.device != "cpu" and gpus >= cfg.workers


def _fit_with_progress(trainer: Any, mailbox: Any, cfg: TrainConfig) -> None:
    """``trainer.fit()`` with a tqdm bar of the epochs rank 0 has finished."""
    import ray
    from tqdm import tqdm

    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    with tqdm(total=cfg.epochs, unit="epoch", desc=f"kge on {cfg.workers} Ray workers",
              disable=None if cfg.progress else True) as bar:
        while thread.is_alive():
            thread.join(timeout=0.5)
            done = ray.get(mailbox.progress.remote())
            bar.update(done - bar.n)
    if "error" in outcome:
        error = outcome["error"]
        raise RuntimeError(f"Ray training failed: {error}") from error


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: its shard, DDP-wrapped loss, Adam; rank 0 evaluates and delivers."""
    import ray.train
    from pykeen.training import training_loop_resolver
    from ray.train.torch import get_device, prepare_model

    from kgrec.embeddings.pykeen_setup import build_model, extract_artifact, training_loop
    from kgrec.embeddings.ray_cluster import pack_directory

    torch.set_num_threads(config["threads"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    cfg = TrainConfig(**{**config["cfg"], "drop": tuple(config["cfg"]["drop"])})
    device = get_device()
    training = torch.as_tensor(config["training"])
    factory = _core_factory(training, len(config["entities"]), len(config["relations"]))
    model = build_model(cfg, factory, str(device))
    torch.manual_seed(cfg.seed * 1_000 + rank)  # per-worker batch order and negatives
    mine = _core_factory(training[torch.as_tensor(shard(len(training), world, rank, cfg.seed))],
                         factory.num_entities, factory.num_relations)
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=cfg.learning_rate)
    loop_cls, loop_kwargs = training_loop(cfg)
    loop = training_loop_resolver.make(loop_cls, model=model, triples_factory=mine, optimizer=optimizer,
                                       **loop_kwargs)
    batches = loop._create_training_data_loader(mine, sampler=None, batch_size=max(1, cfg.batch_size // world),
                                                drop_last=False, shuffle=True, num_workers=0, pin_memory=False)
    step = prepare_model(LossOf(loop), move_to_device=False)
    if isinstance(step, torch.nn.parallel.DistributedDataParallel):
        step.register_comm_hook(None, row_sparse_allreduce)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = step(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss in epoch {epoch} on worker {rank}")
            loss.backward()
            optimizer.step()
            model.post_parameter_update()
        if rank == 0:
            config["mailbox"].epoch_done.remote(epoch)
    seconds = time.perf_counter() - t0
    cpu = _gathered(time.process_time() - cpu0, world, device)
    spread = replica_spread(model)
    if rank == 0:
        metrics = _evaluate(model, config) if len(config["testing"]) else {}
        metrics.update({
            "epochs_run": cfg.epochs, "train_seconds": round(seconds, 3),
            "epochs_per_second": round(cfg.epochs / seconds, 4) if seconds > 0 else None,
            "device": device.type, "training_triples": len(training), "engine": "ray", "workers": world,
            "threads_per_worker": config["threads"], "replica_max_abs_diff": spread,
            "worker_cpu_seconds": [round(c, 3) for c in cpu],
        })
        artifact = extract_artifact(model, tuple(config["entities"]), tuple(config["relations"]), cfg, metrics,
                                    config["fingerprint"])
        with tempfile.TemporaryDirectory(prefix="kgrec-artifact-") as tmp:
            artifact.save(Path(tmp))
            ray.get(config["mailbox"].deliver.remote(pack_directory(Path(tmp))))
    ray.train.report({"epochs": cfg.epochs})


#: Gradients with at least this many rows are exchanged row-sparse (entity tables).
ROW_SPARSE_MIN = 64


def row_sparse_allreduce(state, bucket):
    """DDP communication hook (``bucket``: a ``dist.GradBucket``; returns a future of its buffer;
    left unannotated because DDP compares the annotations with its classes, and this module's
    postponed annotations are strings): the average of every gradient in the bucket, like DDP's own,
    but an embedding table's gradient is exchanged only on the rows some worker touched.

    A batch touches a few thousand of an entity table's rows (its heads, tails and shared
    negatives); the rest of the gradient is zero on every worker. DDP's default all-reduces
    the whole dense table each step (16 MB for Last.fm 2K's RotatE, 21 ms on 2 local workers,
    about 7 s per epoch); here the workers first agree on the union of their non-zero rows
    (two small all-gathers), then all-reduce only those. The sums are the same numbers the
    dense exchange computes, so every worker still takes the same step.
    """
    import torch.distributed as dist

    world = dist.get_world_size()
    for grad in bucket.gradients():
        flat = grad.view(grad.shape[0], -1) if grad.dim() >= 2 else grad
        if grad.dim() >= 2 and grad.shape[0] >= ROW_SPARSE_MIN:
            rows = _union_of_rows(flat.ne(0).any(dim=1).nonzero().squeeze(1), world)
            values = flat[rows]
            dist.all_reduce(values)
            flat[rows] = values / world
        else:
            dist.all_reduce(flat)
            flat.div_(world)
    done: torch.futures.Future = torch.futures.Future()
    done.set_result(bucket.buffer())
    return done


def _union_of_rows(rows: torch.Tensor, world: int) -> torch.Tensor:
    import torch.distributed as dist

    count = torch.tensor([len(rows)], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    width = int(max(c.item() for c in counts))
    padded = torch.full((width,), -1, dtype=rows.dtype, device=rows.device)
    padded[: len(rows)] = rows
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    union = torch.unique(torch.cat(gathered))
    return union[union >= 0]


def replica_spread(model: torch.nn.Module) -> float:
    """Largest difference between any worker's parameters and rank 0's (0.0 when DDP kept
    the replicas in step, as it must: each worker saw other triples)."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return 0.0
    worst = torch.zeros((), dtype=torch.float64, device=next(model.parameters()).device)
    for p in model.parameters():
        ref = p.detach().clone()
        dist.broadcast(ref, src=0)
        worst = torch.maximum(worst, (p.detach() - ref).abs().max().double())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def _gathered(value: float, world: int, device: torch.device) -> list[float]:
    """``value`` of every worker (rank order); CPU seconds per worker show how a run would go
    on cores nobody else uses, which the wall clock of a shared machine does not."""
    import torch.distributed as dist

    if world == 1 or not dist.is_initialized():
        return [value]
    out = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(world)]  # NCCL: on the GPU
    dist.all_gather(out, torch.tensor([value], dtype=torch.float64, device=device))
    return [float(x) for x in out]


def _core_factory(mapped: Any, num_entities: int, num_relations: int) -> Any:
    from pykeen.triples import CoreTriplesFactory

    return CoreTriplesFactory(mapped_triples=mapped, num_entities=num_entities, num_relations=num_relations)


class LossOf(torch.nn.Module):
    """One batch's loss as a module's forward, so that DDP all-reduces its gradients."""

    def __init__(self, loop: Any) -> None:
        super().__init__()
        self.model = loop.model
        self._process = loop._process_batch
        self._size = loop._get_batch_size

    def forward(self, batch: Any) -> torch.Tensor:
        return self._process(batch, 0, self._size(batch))


def _evaluate(model: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Filtered rank-based metrics on the test cut, as ``pykeen.pipeline`` computes them."""
    from pykeen.evaluation import RankBasedEvaluator

    evaluator = RankBasedEvaluator(filtered=True)
    result = evaluator.evaluate(model, torch.as_tensor(config["testing"]), batch_size=256, use_tqdm=False,
                                additional_filter_triples=[torch.as_tensor(f) for f in config["filters"]])
    return {**link_metrics(result.to_flat_dict()), "evaluated_triples": len(config["testing"]),
            "evaluated_relation": INTERACTED, "filtered": True}
