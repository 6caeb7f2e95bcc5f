"""The PyKEEN side of KGE training that every engine shares: the configuration, the model, the
training-loop choice, the metrics' names and the torch-free artifact read from a trained model.

``embeddings.train`` (this process) and ``embeddings.ray_train`` (Ray workers) both build on
it, so a model trained either way is the same model; neither of them is imported here.
torch and pykeen are imported inside the functions so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kgrec.embeddings.artifact import KGEArtifact
from kgrec.embeddings.scoring import MODELS, Interaction
from kgrec.embeddings.triples import LabeledTriples, TripleOptions

#: ``shared``: sLCWA whose negatives are shared by the batch (``embeddings.shared_negatives``).
TRAINING_LOOPS = ("shared", "slcwa", "lcwa")
#: ``local``: this process (``pykeen.pipeline``); ``ray``: data-parallel on Ray Train (``embeddings.ray_train``).
ENGINES = ("local", "ray")
NEGATIVE_SAMPLERS = ("basic", "bernoulli")
#: The metrics reported, as (our name, PyKEEN's flat key suffix).
METRICS = (
    ("mrr", "realistic.inverse_harmonic_mean_rank"),
    ("hits_at_1", "realistic.hits_at_1"),
    ("hits_at_3", "realistic.hits_at_3"),
    ("hits_at_10", "realistic.hits_at_10"),
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model; stored in the artifact's config.json.

    The defaults are the best configuration of ``benchmarks/kge.py``'s search on Last.fm 2K:
    RotatE, dim 64, batches of 1,024 that share 1,024 negative tails, softmax cross-entropy,
    16 epochs (3.2 minutes for Last.fm 2K on 2 CPU cores); 2% of INTERACTED triples are held out for the
    link-prediction metrics. ``num_negatives`` is per positive for ``slcwa`` and per batch
    for ``shared``; ``head_fraction`` is the share of a ``shared`` batch that corrupts heads
    instead of tails. ``engine="ray"`` trains on ``workers`` data-parallel Ray workers of
    ``worker_cpus`` CPUs each (0: this machine's cores shared out), see ``embeddings.ray_train``.
    """

    model: str = "RotatE"
    dim: int = 64
    epochs: int = 16
    batch_size: int = 1024
    learning_rate: float = 0.01
    training_loop: str = "shared"
    negative_sampler: str = "basic"
    num_negatives: int = 1024
    loss: str | None = "crossentropy"
    head_fraction: float = 0.0
    seed: int = 42
    device: str = "auto"
    test_fraction: float = 0.02
    validation_fraction: float = 0.0
    early_stopping: bool = True
    eval_every: int = 5
    patience: int = 2
    drop: tuple[str, ...] = ()
    min_weight: float = 0.0
    inverse: bool = False
    transe_norm: int = 2
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    workers: int = 1
    worker_cpus: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown kge model {self.model!r}; expected one of {MODELS}")
        if self.training_loop not in TRAINING_LOOPS:
            raise ValueError(f"unknown training loop {self.training_loop!r}; expected one of {TRAINING_LOOPS}")
        if self.negative_sampler not in NEGATIVE_SAMPLERS:
            raise ValueError(f"unknown negative sampler {self.negative_sampler!r}; expected {NEGATIVE_SAMPLERS}")
        if self.dim < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("dim, epochs and batch_size must be positive")
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ValueError("head_fraction must be within [0, 1]")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {ENGINES}")
        if self.workers < 1 or self.worker_cpus < 0:
            raise ValueError("workers must be at least 1 and worker_cpus at least 0")
        if self.workers > 1 and self.engine == "local":
            raise ValueError("several workers need engine='ray' (the local engine trains in one process)")
        object.__setattr__(self, "drop", tuple(self.drop))

    @property
    def triple_options(self) -> TripleOptions:
        return TripleOptions(drop=frozenset(self.drop), min_weight=self.min_weight, inverse=self.inverse)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drop"] = list(self.drop)
        return d


@dataclass
class TrainResult:
    """The PyKEEN model and factory (for tests and write-back) and the artifact."""

    model: Any
    triples_factory: Any
    artifact: KGEArtifact


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available")
    return device


def labeled_factory(t: LabeledTriples, entity_to_id: dict[str, int], relation_to_id: dict[str, int]) -> Any:
    """A PyKEEN ``TriplesFactory`` over ``t`` with the training cut's ids, so every cut shares them."""
    from pykeen.triples import TriplesFactory

    return TriplesFactory.from_labeled_triples(
        t.triples, entity_to_id=entity_to_id, relation_to_id=relation_to_id, create_inverse_triples=False
    )


def _model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {"embedding_dim": cfg.dim}
    if cfg.model == "TransE":
        kw["scoring_fct_norm"] = cfg.transe_norm
    return kw


def build_model(cfg: TrainConfig, tf_train: Any, device: str, extra: Mapping[str, Any] | None = None) -> Any:
    """The PyKEEN model, seeded; with the shared-negatives loop its interaction is swapped for
    the matrix-product twin (same function, see ``embeddings.interactions``). ``extra``: more
    model arguments (a warm start's initialisers, ``embeddings.warm_train``)."""
    from pykeen.losses import loss_resolver
    from pykeen.models import model_resolver
    from pykeen.utils import set_random_seed

    set_random_seed(cfg.seed)
    model = model_resolver.make(
        cfg.model, {**_model_kwargs(cfg), **(extra or {})}, triples_factory=tf_train, random_seed=cfg.seed,
        loss=loss_resolver.make(cfg.loss) if cfg.loss else None,
    )
    if cfg.training_loop == "shared":
        from kgrec.embeddings.interactions import use_matmul_interaction

        use_matmul_interaction(model, cfg.model)
    return model.to(device)


def training_loop(cfg: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """The training loop (name or class) and its keyword arguments; public because the local
    pipeline and every Ray worker must pick the same one."""
    if cfg.training_loop == "shared":
        from kgrec.embeddings.shared_negatives import SharedNegativesTrainingLoop

        return SharedNegativesTrainingLoop, {"num_shared_negatives": cfg.num_negatives,
                                             "head_fraction": cfg.head_fraction}
    if cfg.training_loop == "slcwa":
        return "slcwa", {"negative_sampler": cfg.negative_sampler,
                         "negative_sampler_kwargs": {"num_negs_per_pos": cfg.num_negatives}}
    return "lcwa", {}


def link_metrics(flat: Mapping[str, Any]) -> dict[str, float]:
    """Our names for PyKEEN's flat rank-based metrics (tail side and both sides)."""
    out = {}
    for side in ("tail", "both"):
        for ours, key in METRICS:
            value = flat.get(f"{side}.{key}")
            if value is not None:
                out[f"{side}.{ours}"] = float(value)
    return out


def interaction_of(model: Any, name: str) -> Interaction:
    """The numpy interaction matching a trained PyKEEN model's own parameters."""
    inter = model.interaction
    return Interaction(name, float(getattr(inter, "p", 1) or 1), bool(getattr(inter, "power_norm", False)))


def extract_artifact(
    model: Any,
    entities: tuple[str, ...],
    relations: tuple[str, ...],
    cfg: TrainConfig,
    metrics: dict[str, Any],
    fingerprint: str,
) -> KGEArtifact:
    """Read the vectors as the model's forward pass sees them (constraints applied)."""
    import torch

    model.eval()
    with torch.no_grad():
        ent = model.entity_representations[0](indices=None).detach().cpu().numpy()
        rel = model.relation_representations[0](indices=None).detach().cpu().numpy()
    ent = ent.astype(np.complex64 if np.iscomplexobj(ent) else np.float32)
    rel = rel.astype(np.complex64 if np.iscomplexobj(rel) else np.float32)
    return KGEArtifact(
        interaction=interaction_of(model, cfg.model),
        entity_vectors=ent,
        relation_vectors=rel,
        entities=tuple(entities),
        relations=tuple(relations),
        config=cfg.to_dict(),
        metrics=metrics,
        fingerprint=fingerprint,
    )
