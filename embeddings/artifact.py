"""The trained-embedding artifact: a directory that loads with numpy alone.

Layout::

    entity_vectors.npy    entity vectors in row order (float32, or complex64 for ComplEx/RotatE)
    relation_vectors.npy  relation vectors in row order (the same dtype)
    entities.json         entity labels in row order ("user:<id>", "item:<id>", ...)
    relations.json        relation labels in row order
    config.json           model, interaction parameters, training configuration
    metrics.json          link-prediction metrics on held-out INTERACTED triples
    snapshot.json         fingerprint of the snapshot it was trained on

No torch and no pickle: serving processes map the vectors read-only (``graph.array_files``:
uncompressed ``.npy``, shared by every process that maps them, never copied at load) and read
JSON, so a hand-crafted file cannot execute code. Format 1 kept the vectors in
``vectors.safetensors``, which numpy could only copy into each process: retrain those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.embeddings.scoring import Interaction
from kgrec.graph.array_files import map_array, save_array

#: 2: vectors as mapped ``.npy`` files (1: ``vectors.safetensors``).
FORMAT_VERSION = 2
ENTITY_VECTORS, RELATION_VECTORS = "entity_vectors", "relation_vectors"
VECTORS = (f"{ENTITY_VECTORS}.npy", f"{RELATION_VECTORS}.npy")


@dataclass(frozen=True)
class KGEArtifact:
    """Entity and relation vectors (complex for ComplEx/RotatE) with their label maps."""

    interaction: Interaction
    entity_vectors: np.ndarray
    relation_vectors: np.ndarray
    entities: tuple[str, ...]
    relations: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    entity_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    relation_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.entity_vectors.shape[0] != len(self.entities):
            raise ValueError(f"{self.entity_vectors.shape[0]} entity vectors for {len(self.entities)} entities")
        if self.relation_vectors.shape[0] != len(self.relations):
            raise ValueError(f"{self.relation_vectors.shape[0]} relation vectors for {len(self.relations)} relations")
        object.__setattr__(self, "entity_index", {e: i for i, e in enumerate(self.entities)})
        object.__setattr__(self, "relation_index", {r: i for i, r in enumerate(self.relations)})

    @property
    def dim(self) -> int:
        return int(self.entity_vectors.shape[1])

    def entity(self, label: str) -> np.ndarray | None:
        i = self.entity_index.get(label)
        return None if i is None else self.entity_vectors[i]

    def relation(self, label: str) -> np.ndarray:
        i = self.relation_index.get(label)
        if i is None:
            raise KeyError(f"relation {label!r} was not trained; known: {list(self.relations)}")
        return self.relation_vectors[i]

    def real_view(self, vectors: np.ndarray) -> np.ndarray:
        """Complex vectors as [real | imag] so that cosine similarity is defined."""
        if np.iscomplexobj(vectors):
            return np.concatenate([vectors.real, vectors.imag], axis=-1)
        return vectors

    def save(self, directory: str | Path) -> None:
        """Write the artifact (vectors in float32, or complex64)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_array(d / VECTORS[0], _stored(self.entity_vectors))
        save_array(d / VECTORS[1], _stored(self.relation_vectors))
        _write_json(d / "entities.json", list(self.entities))
        _write_json(d / "relations.json", list(self.relations))
        _write_json(
            d / "config.json",
            {"format": FORMAT_VERSION, "interaction": self.interaction.to_dict(), "training": self.config},
        )
        _write_json(d / "metrics.json", self.metrics)
        _write_json(d / "snapshot.json", {"fingerprint": self.fingerprint})

    @classmethod
    def load(cls, directory: str | Path) -> KGEArtifact:
        d = Path(directory)
        if (d / "config.json").is_file() and (d / "vectors.safetensors").is_file():
            raise ValueError(f"{d}: kge artifact format 1 (vectors.safetensors): retrain with kgrec train")
        missing = [n for n in (*VECTORS, "entities.json", "relations.json", "config.json") if not (d / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{d}: not a kge artifact, missing {missing}")
        config = _read_json(d / "config.json")
        if config.get("format") != FORMAT_VERSION:
            raise ValueError(f"{d}: kge artifact format {config.get('format')} is not {FORMAT_VERSION}: "
                             "retrain with kgrec train")
        entity, relation = (_vectors(map_array(d / name), d / name) for name in VECTORS)
        metrics = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {}
        snap = _read_json(d / "snapshot.json") if (d / "snapshot.json").is_file() else {}
        return cls(
            interaction=Interaction.from_dict(config["interaction"]),
            entity_vectors=entity,
            relation_vectors=relation,
            entities=tuple(_read_json(d / "entities.json")),
            relations=tuple(_read_json(d / "relations.json")),
            config=config.get("training", {}),
            metrics=metrics,
            fingerprint=str(snap.get("fingerprint", "")),
        )


def _stored(v: np.ndarray) -> np.ndarray:
    """Vectors in the dtype they are served in: complex64 for complex models, else float32."""
    return np.ascontiguousarray(v, dtype=np.complex64 if np.iscomplexobj(v) else np.float32)


def _vectors(v: np.ndarray, path: Path) -> np.ndarray:
    if v.ndim != 2 or v.dtype not in (np.float32, np.complex64):
        raise ValueError(f"{path}: vectors must be a float32 or complex64 matrix, not {v.dtype} {v.shape}")
    return v


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
