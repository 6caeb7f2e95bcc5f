"""A versioned model bundle: the snapshot and every fitted model, with no pickle.

Layout of a bundle directory::

    manifest.json        {"format", "created", "seed", "snapshot": {fingerprint, counts},
                          "models": [{"name", "path", "config"}], "fallback": [names],
                          "files": {relative path: sha256}, "tuning": {...}, "hybrid": {...}}
    snapshot/            GraphSnapshot.save (snapshot.npz + snapshot.json)
    models/<name>/       Recommender.save: model.json + arrays.npz (allow_pickle=False)

Any registered recommender can live in a bundle if its ``save(dir)`` writes only JSON and
numeric arrays under ``dir`` and its ``load(dir, snapshot)`` classmethod restores it from
them, refusing a snapshot with another fingerprint (``recommenders.scored`` documents the
format its subclasses share; a recommender with other files — e.g. ``kge`` vectors as
safetensors — keeps them in its own directory the same way). The bundle is written to a
temporary sibling directory and renamed into place, so a crash never leaves half a bundle.

``kgrec train`` adds what it chose: ``tuning`` (``recommenders.tuning.TuningResult.to_json``:
budget, seed, and per tuned recommender its search space, every trial's parameters, state and
validation NDCG@10, and the chosen values; ``{"tuned": false}`` with ``--no-tune``) and
``hybrid`` (what the hybrid serves — its learned ranker or one component — with every
validation value and the reason, ``recommenders.hybrid_selection.Selection``).

Bundles are tamper-evident (``recommenders.integrity``): the manifest records a SHA-256 of
every file, and loading refuses — with one ``BundleError`` line, before any file is parsed —
a bundle whose files differ, are missing or extra, or whose manifest paths leave the folder;
each model's arrays are then checked against the snapshot's dimensions and for NaN.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext, Recommender
from kgrec.recommenders.bundle.integrity import MANIFEST, confined, digest_files, verify_files
from kgrec.recommenders.registry import create, get
from kgrec.recommenders.saved_arrays import BundleError

BUNDLE_FORMAT = 1
#: Appended to every chain so that unknown and cold users always get an answer.
LAST_RESORT = "popularity"
#: The manifest's own fields, which ``extra`` cannot replace.
MANIFEST_KEYS = frozenset({"format", "created", "seed", "snapshot", "models", "fallback", "files"})


@dataclass
class Bundle:
    """A loaded bundle: the snapshot, the models by name, and the manifest (with the fallback
    order). ``recommenders.serving.Server.from_bundle`` serves it."""

    snapshot: GraphSnapshot
    models: dict[str, Recommender]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def fallback(self) -> list[str]:
        """The order in which models fill a list (the default model first, popularity last)."""
        return list(self.manifest.get("fallback") or self.models)

    @classmethod
    def load(cls, directory: str | Path) -> Bundle:
        """The bundle in ``directory``, verified first; ``BundleError`` (one line) otherwise."""
        d = Path(directory)
        path = d / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{d}: no manifest.json; not a kgrec bundle")
        try:
            return cls._load(d, path)
        except BundleError:
            raise
        except Exception as exc:  # a damaged file of any kind: say so in one line, not a traceback
            raise BundleError(f"{d}: cannot be loaded: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def _load(cls, d: Path, path: Path) -> Bundle:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{d}: bundle format {manifest.get('format') if isinstance(manifest, dict) else '?'} "
                              f"is not {BUNDLE_FORMAT}")
        verify_files(d, manifest.get("files"))
        snapshot = GraphSnapshot.load(d / "snapshot")
        expected = manifest["snapshot"]["fingerprint"]
        if snapshot.fingerprint != expected:
            raise BundleError(f"{d}: snapshot {snapshot.fingerprint} is not the one the manifest names ({expected})")
        models: dict[str, Recommender] = {}
        for entry in manifest["models"]:
            models[entry["name"]] = get(entry["name"]).load(confined(d, entry["path"], "model path"), snapshot)
        missing = [n for n in manifest["fallback"] if n not in models]
        if missing:
            raise BundleError(f"{d}: the fallback order names models the bundle lacks: {', '.join(missing)}")
        return cls(snapshot, models, manifest)


def fit_models(snapshot: GraphSnapshot, names: Sequence[str], seed: int = 42,
               configs: dict[str, dict[str, Any]] | None = None,
               progress: Callable[[str, float], None] | None = None,
               cut_fitted: Mapping[str, Recommender] | None = None) -> dict[str, Recommender]:
    """Fit each named recommender (defaults, the seed, and any per-name overrides). A model
    built from others (``composes``: the hybrid) is fitted after the rest and takes those it
    would fit the same way instead of refitting them on the whole snapshot, and the ones the
    tuner fitted on its validation cut (``cut_fitted``) instead of refitting them there."""
    configs = configs or {}
    order = _with_last_resort(names)
    fitted: dict[str, Recommender] = {}
    for name in sorted(order, key=lambda n: get(n).composes):  # stable: composed models last
        rec = create(name, **{"seed": seed, **configs.get(name, {})})
        started = time.perf_counter()
        rec.fit(snapshot, FitContext(fitted=dict(fitted), cut_fitted=dict(cut_fitted or {})))
        if progress is not None:
            progress(name, time.perf_counter() - started)
        fitted[name] = rec
    return {name: fitted[name] for name in order}


def save_bundle(directory: str | Path, snapshot: GraphSnapshot, models: dict[str, Recommender],
                seed: int = 42, overwrite: bool = False, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a bundle atomically (temp dir + rename); refuses to replace one unless asked.
    ``extra`` adds manifest fields (``tuning``, ``hybrid``: see the module docstring)."""
    d = Path(directory)
    if d.exists() and any(d.iterdir()) and not overwrite:
        raise FileExistsError(f"{d} exists and is not empty; choose another --out or pass --force")
    if LAST_RESORT not in models:
        raise ValueError(f"a bundle needs the {LAST_RESORT!r} model as the last resort of its chain")
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
    try:
        snapshot.save(tmp / "snapshot")
        entries = []
        for name, rec in models.items():
            rec.save(tmp / "models" / name)
            entries.append({"name": name, "path": f"models/{name}", "config": asdict(rec.config)})
        manifest = {
            "format": BUNDLE_FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": seed,
            "snapshot": {"fingerprint": snapshot.fingerprint, "counts": snapshot.counts},
            "models": entries,
            "fallback": _with_last_resort(list(models)),
            **{k: v for k, v in (extra or {}).items() if k not in MANIFEST_KEYS},
            "files": digest_files(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if d.exists():
            old = d.with_name(f".{d.name}.old-{os.getpid()}")
            d.rename(old)
            tmp.rename(d)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d


def _with_last_resort(names: Sequence[str]) -> list[str]:
    out = [n for n in dict.fromkeys(names) if n != LAST_RESORT]
    return [*out, LAST_RESORT]
