"""Train a kge model that starts from an older model's vectors (``kgrec train --warm-start``).

The new model's entities and relations are matched to the old ones by label and the new rows
initialised from their neighbours (``embeddings.warm_init``); PyKEEN then trains with the usual
configuration and loop (no link-prediction cut: the caller validates on its own cut).

The vectors reach PyKEEN through its own hook, ``entity_initializer`` / ``relation_initializer``,
because ``TrainingLoop.train`` (without ``continue_training``) begins with
``model.reset_parameters_()``, which re-runs the initialisers: vectors copied into the weights
after construction are wiped. PyKEEN 1.11's ``PretrainedInitializer`` is not enough either: it
returns its own tensor, which becomes the parameter's storage; the reset then visits torch's
inner ``nn.Embedding`` first, whose ``reset_parameters`` writes N(0, 1) noise into that shared
storage, and PyKEEN's ``Embedding.reset_parameters`` copies the (now noisy) tensor back — the
pretrained entities are silently lost (relations survive only when a constrainer re-allocates
them, as RotatE's does). ``CopyingInitializer`` hands out a copy each time (cf. pykeen#640).
Complex models (RotatE, ComplEx) keep (n, dim, 2) real tensors, so vectors go in as
``torch.view_as_real``.

torch and pykeen are imported inside the functions, as in ``embeddings.train``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.pykeen_setup import (
    TrainConfig,
    build_model,
    extract_artifact,
    labeled_factory,
    resolve_device,
    training_loop,
)
from kgrec.embeddings.triples import build_triples
from kgrec.embeddings.warm_init import InitReport, kge_initial_vectors
from kgrec.graph.snapshot import GraphSnapshot

#: Called with the epoch (0: the starting point) and the vectors then; True stops training.
AfterEpoch = Callable[[int, KGEArtifact], bool]


class StopTraining(Exception):
    """Raised from the epoch callback to end training (not a RuntimeError: PyKEEN catches those)."""


def copying_initializer(tensor: Any) -> Any:
    """A ``PretrainedInitializer`` for ``tensor`` that returns a copy on every call (see the
    module docstring for why the stock one loses the vectors)."""
    from pykeen.nn.init import PretrainedInitializer

    class CopyingInitializer(PretrainedInitializer):
        def __call__(self, x: Any) -> Any:
            return super().__call__(x).clone()

    return CopyingInitializer(tensor)


def as_initializer_tensor(vectors: np.ndarray) -> Any:
    """Vectors as the tensor PyKEEN's initialisers receive: complex ones as (n, dim, 2) reals."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(vectors))
    return torch.view_as_real(t).clone() if torch.is_complex(t) else t.clone()


def initializers(entities: np.ndarray, relations: np.ndarray,
                 make: Callable[[Any], Any] = copying_initializer) -> dict[str, Any]:
    """The model arguments that start a PyKEEN model at these vectors."""
    return {"entity_initializer": make(as_initializer_tensor(entities)),
            "relation_initializer": make(as_initializer_tensor(relations))}


def warm_train(snapshot: GraphSnapshot, cfg: TrainConfig, source: KGEArtifact, epochs: int,
               after_epoch: AfterEpoch | None = None, aliases: Mapping[str, str] | None = None,
               ) -> tuple[KGEArtifact, dict[str, Any]]:
    """Train ``cfg``'s model on ``snapshot``'s triples for at most ``epochs`` epochs, starting
    from ``source`` (matched by label, ``aliases``: new entity label → old label). Returns the
    vectors after the last epoch run and what was done (rows copied, derived and left to the
    default initialisation; epochs run; seconds)."""
    import torch
    from pykeen.training import training_loop_resolver
    from pykeen.training.callbacks import TrainingCallback

    device = resolve_device(cfg.device)
    triples = build_triples(snapshot, cfg.triple_options)
    entity_to_id = {e: i for i, e in enumerate(triples.entities)}
    relation_to_id = {r: i for i, r in enumerate(triples.relations)}
    tf = labeled_factory(triples, entity_to_id, relation_to_id)
    started = time.perf_counter()
    fresh = build_model(cfg, tf, "cpu")  # its own initialisation, for the rows nothing implies
    with torch.no_grad():
        default_e = fresh.entity_representations[0](indices=None).detach().cpu().numpy().copy()
        default_r = fresh.relation_representations[0](indices=None).detach().cpu().numpy().copy()
    del fresh
    ent, rel, ents, rels = kge_initial_vectors(
        source.entities, source.entity_vectors, source.relations, source.relation_vectors,
        triples.entities, triples.relations, triples.triples, cfg.model, default_e, default_r, aliases)
    model = build_model(cfg, tf, device, initializers(ent.astype(default_e.dtype), rel.astype(default_r.dtype)))
    info: dict[str, Any] = {"entities": ents.as_dict(), "relations": rels.as_dict(),
                            "init_seconds": round(time.perf_counter() - started, 3)}

    def artifact(epoch: int) -> KGEArtifact:
        return extract_artifact(model, triples.entities, triples.relations, cfg,
                                {"warm_epochs": epoch, "training_triples": len(triples)}, snapshot.fingerprint)

    ran = [0]

    class Validate(TrainingCallback):
        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
            ran[0] = epoch
            if after_epoch is None:
                return
            vectors = artifact(epoch)  # extract_artifact leaves the model in eval mode
            model.train()
            if after_epoch(epoch, vectors):
                raise StopTraining

    stop = after_epoch is not None and after_epoch(0, artifact(0))
    if epochs > 0 and not stop:
        loop, loop_kwargs = training_loop(cfg)
        optimizer = torch.optim.Adam(model.get_grad_params(), lr=cfg.learning_rate)
        trainer = training_loop_resolver.make(loop, model=model, triples_factory=tf, optimizer=optimizer,
                                              **loop_kwargs)
        with contextlib.suppress(StopTraining):  # train() resets the parameters: the initialisers put the start back
            trainer.train(triples_factory=tf, num_epochs=epochs, batch_size=cfg.batch_size, use_tqdm=cfg.progress,
                          use_tqdm_batch=False, callbacks=[Validate()])
    info["epochs_run"] = ran[0]
    info["seconds"] = round(time.perf_counter() - started, 3)
    return artifact(ran[0]), info


def stock_initializers(entities: np.ndarray, relations: np.ndarray) -> dict[str, Any]:
    """PyKEEN's own ``PretrainedInitializer`` for these vectors (what ``initializers`` replaces;
    kept for the test that shows the difference)."""
    from pykeen.nn.init import PretrainedInitializer

    return initializers(entities, relations, PretrainedInitializer)


__all__ = ["InitReport", "StopTraining", "copying_initializer", "initializers", "stock_initializers",
           "warm_train"]
