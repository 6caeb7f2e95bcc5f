"""Train a PyKEEN model on snapshot triples and turn it into a torch-free artifact.

``pykeen.pipeline`` does the work: model, loss, negative sampler, early stopping on a
validation cut of INTERACTED triples, and filtered rank-based evaluation on a test cut
of INTERACTED triples only (the relation the recommender scores with). With no held-out
cut at all (fractions 0) the same model and training loop run without evaluation.
``engine="ray"`` hands the same split to ``embeddings.ray_train``; the configuration and the
model both engines build live in ``embeddings.pykeen_setup``. torch, pykeen and Ray are
imported inside the functions so importing this module is cheap.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.pykeen_setup import (
    TrainConfig,
    TrainResult,
    build_model,
    extract_artifact,
    labeled_factory,
    link_metrics,
    resolve_device,
    training_loop,
)
from kgrec.embeddings.triples import INTERACTED, LabeledTriples, build_triples, split_interactions
from kgrec.graph.snapshot import GraphSnapshot


def train(snapshot: GraphSnapshot, config: TrainConfig | None = None) -> KGEArtifact:
    """Train on a snapshot and return the artifact (vectors, maps, config, metrics)."""
    return train_full(snapshot, config).artifact


def train_full(snapshot: GraphSnapshot, config: TrainConfig | None = None) -> TrainResult:
    """Train and keep the PyKEEN model too."""
    cfg = config or TrainConfig()
    triples = build_triples(snapshot, cfg.triple_options)
    if not len(triples.of([INTERACTED])):
        raise ValueError("the snapshot has no INTERACTED triples to train on")
    training, testing, validation = split_interactions(triples, cfg.test_fraction, cfg.validation_fraction, cfg.seed)
    if cfg.engine == "ray":
        from kgrec.embeddings.ray_train import check_config, train_triples_on_ray

        check_config(cfg)
        return train_triples_on_ray(training, testing, validation, cfg, snapshot.fingerprint)
    return train_triples(training, testing, validation, cfg, snapshot.fingerprint)


def train_triples(
    training: LabeledTriples,
    testing: LabeledTriples,
    validation: LabeledTriples,
    cfg: TrainConfig,
    fingerprint: str = "",
) -> TrainResult:
    """Train on labelled triples already split; test/validation may be empty."""
    import torch

    device = resolve_device(cfg.device)
    entity_to_id = {e: i for i, e in enumerate(training.entities)}
    relation_to_id = {r: i for i, r in enumerate(training.relations)}
    tf_train = labeled_factory(training, entity_to_id, relation_to_id)
    loop, loop_kwargs = training_loop(cfg)
    model = build_model(cfg, tf_train, device)
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    if len(testing):
        from pykeen.pipeline import pipeline

        has_val = len(validation) > 0
        stopper: dict[str, Any] = {}
        # The stopper keeps the best weights in a file; ours, in a directory we remove.
        scratch = tempfile.TemporaryDirectory(prefix="kgrec-kge-")
        if cfg.early_stopping and has_val:
            stopper = {
                "stopper": "early",
                "stopper_kwargs": {"frequency": cfg.eval_every, "patience": cfg.patience, "relative_delta": 0.002,
                                   "metric": "inverse_harmonic_mean_rank", "evaluation_batch_size": 256,
                                   "best_model_path": Path(scratch.name) / "best.pt"},
            }
        with scratch:
            result = pipeline(
                training=tf_train,
                testing=labeled_factory(testing, entity_to_id, relation_to_id),
                validation=labeled_factory(validation, entity_to_id, relation_to_id) if has_val else None,
                model=model,
                optimizer="adam",
                optimizer_kwargs={"lr": cfg.learning_rate},
                training_loop=loop,
                training_loop_kwargs=loop_kwargs,
                training_kwargs={"num_epochs": cfg.epochs, "batch_size": cfg.batch_size, "use_tqdm": cfg.progress,
                                 "use_tqdm_batch": False},
                evaluator="rankbased",
                evaluator_kwargs={"filtered": True},
                evaluation_kwargs={"batch_size": 256, "use_tqdm": cfg.progress},
                random_seed=cfg.seed,
                device=device,
                **stopper,
            )
        model = result.model
        epochs_run = len(result.losses)
        train_seconds = float(result.train_seconds)
        metrics.update(link_metrics(result.metric_results.to_flat_dict()))
        metrics["evaluated_triples"] = len(testing)
        metrics["evaluated_relation"] = INTERACTED
        metrics["filtered"] = True
    else:
        from pykeen.training import training_loop_resolver

        optimizer = torch.optim.Adam(model.get_grad_params(), lr=cfg.learning_rate)
        trainer = training_loop_resolver.make(
            loop, model=model, triples_factory=tf_train, optimizer=optimizer, **loop_kwargs,
        )
        t0 = time.perf_counter()
        losses = trainer.train(triples_factory=tf_train, num_epochs=cfg.epochs, batch_size=cfg.batch_size,
                            use_tqdm=cfg.progress, use_tqdm_batch=False)
        train_seconds = time.perf_counter() - t0
        epochs_run = len(losses or [])
    metrics["epochs_run"] = epochs_run
    metrics["train_seconds"] = round(train_seconds, 3)
    metrics["epochs_per_second"] = round(epochs_run / train_seconds, 4) if train_seconds > 0 else None
    metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
    metrics["device"] = device
    metrics["training_triples"] = len(training)
    artifact = extract_artifact(model, training.entities, training.relations, cfg, metrics, fingerprint)
    return TrainResult(model, tf_train, artifact)
