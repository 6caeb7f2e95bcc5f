"""The trained-embedding artifact: a directory that loads with numpy alone.

Layout::

    vectors.safetensors   entity.real, relation.real (+ entity.imag, relation.imag for complex models)
    entities.json         entity labels in row order ("user:<id>", "item:<id>", ...)
    relations.json        relation labels in row order
    config.json           model, interaction parameters, training configuration
    metrics.json          link-prediction metrics on held-out INTERACTED triples
    snapshot.json         fingerprint of the snapshot it was trained on

No torch and no pickle: serving processes load it with ``safetensors.numpy`` and JSON,
and a hand-crafted file cannot execute code.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from kgrec.embeddings.scoring import Interaction

FORMAT_VERSION = 1
VECTORS = "vectors.safetensors"


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
        """Write the artifact; vectors go through a temp file + rename."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = _split("entity", self.entity_vectors) | _split("relation", self.relation_vectors)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"format": str(FORMAT_VERSION), "model": self.interaction.model})
            os.replace(tmp, d / VECTORS)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
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
        missing = [n for n in (VECTORS, "entities.json", "relations.json", "config.json") if not (d / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{d}: not a kge artifact, missing {missing}")
        config = _read_json(d / "config.json")
        if config.get("format") != FORMAT_VERSION:
            raise ValueError(f"{d}: artifact format {config.get('format')} is not {FORMAT_VERSION}")
        tensors = load_file(str(d / VECTORS))
        metrics = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {}
        snap = _read_json(d / "snapshot.json") if (d / "snapshot.json").is_file() else {}
        return cls(
            interaction=Interaction.from_dict(config["interaction"]),
            entity_vectors=_join("entity", tensors),
            relation_vectors=_join("relation", tensors),
            entities=tuple(_read_json(d / "entities.json")),
            relations=tuple(_read_json(d / "relations.json")),
            config=config.get("training", {}),
            metrics=metrics,
            fingerprint=str(snap.get("fingerprint", "")),
        )


def _split(name: str, v: np.ndarray) -> dict[str, np.ndarray]:
    if np.iscomplexobj(v):
        return {
            f"{name}.real": np.ascontiguousarray(v.real, dtype=np.float32),
            f"{name}.imag": np.ascontiguousarray(v.imag, dtype=np.float32),
        }
    return {f"{name}.real": np.ascontiguousarray(v, dtype=np.float32)}


def _join(name: str, tensors: dict[str, np.ndarray]) -> np.ndarray:
    real = tensors[f"{name}.real"]
    imag = tensors.get(f"{name}.imag")
    return real if imag is None else (real + 1j * imag).astype(np.complex64)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
