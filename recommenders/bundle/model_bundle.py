"""A versioned model bundle: the snapshot and every fitted model, with no pickle.

Layout of a bundle directory (format 2)::

    manifest.json        {"format", "created", "seed", "snapshot": {fingerprint, counts},
                          "models": [{"name", "path", "config"}], "fallback": [names],
                          "files": {relative path: sha256}, "tuning": {...}, "hybrid": {...}}
    bundle.seal          the manifest's SHA-256 (the bundle digest), HMAC-signed with
                         KGREC_BUNDLE_KEY when it is set (``recommenders.bundle.integrity``)
    snapshot/            GraphSnapshot.save (snapshot.json + arrays.npz)
    models/<name>/       Recommender.save: model.json + arrays.npz (uncompressed, mapped)

Any registered recommender can live in a bundle if its ``save(dir)`` writes only JSON and
numeric arrays under ``dir`` and its ``load(dir, snapshot)`` classmethod restores it from
them, refusing a snapshot with another fingerprint (``recommenders.scored`` documents the
format its subclasses share; a recommender with other files — e.g. ``kge``'s artifact —
keeps them in its own directory the same way). Arrays load mapped read-only
(``graph.array_files``): every process serving the bundle on one machine shares one copy.
The bundle is written to a temporary sibling directory and renamed into place, so a crash
never leaves half a bundle; a bundle is never changed in place (a mapped file must not change).
Format 1 (compressed ``.npz`` arrays, an unsealed manifest) is refused: retrain it.

``kgrec train`` adds what it chose: ``tuning`` (``recommenders.tuning.TuningResult.to_json``:
budget, seed, and per tuned recommender its search space, every trial's parameters, state and
validation NDCG@10, and the chosen values; ``{"tuned": false}`` with ``--no-tune``) and
``hybrid`` (what the hybrid serves — its learned ranker or one component — with every
validation value and the reason, ``recommenders.hybrid_selection.Selection``).

Bundles are tamper-evident (``recommenders.bundle.integrity``): the manifest records a SHA-256
of every file and the seal the manifest's own, and loading refuses — with one ``BundleError``
line naming the file, before any array is used — a bundle whose manifest, seal or files differ,
are missing or extra, whose signature does not match ``KGREC_BUNDLE_KEY``, or whose manifest
paths leave the folder; each model's arrays are then checked against the snapshot's dimensions,
for canonical sparse matrices and for NaN.
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

from kgrec.graph.array_files import verified_files
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitContext, Recommender, WarmStart
from kgrec.recommenders.bundle.integrity import (
    MANIFEST,
    SEAL,
    BundleSeal,
    bundle_key,
    check_seal,
    confined,
    digest_files,
    verify_files,
    write_seal,
)
from kgrec.recommenders.registry import create, get
from kgrec.recommenders.saved_arrays import BundleError

#: 2: sealed manifest, arrays in uncompressed, mapped ``.npz`` archives (1: compressed, unsealed).
BUNDLE_FORMAT = 2
#: Appended to every chain so that unknown and cold users always get an answer.
LAST_RESORT = "popularity"
#: The manifest's own fields, which ``extra`` cannot replace.
MANIFEST_KEYS = frozenset({"format", "created", "seed", "snapshot", "models", "fallback", "files"})


class _FromEnv:
    """The default of ``key`` arguments: ``KGREC_BUNDLE_KEY`` from the environment."""


FROM_ENV = _FromEnv()


@dataclass
class Bundle:
    """A loaded bundle: the snapshot, the models by name, the manifest (with the fallback
    order) and what verified it (``seal``: the bundle digest, the signature state, the files'
    identities). ``recommenders.serving.Server.from_bundle`` serves it."""

    snapshot: GraphSnapshot
    models: dict[str, Recommender]
    manifest: dict[str, Any] = field(default_factory=dict)
    seal: BundleSeal | None = None

    @property
    def fallback(self) -> list[str]:
        """The order in which models fill a list (the default model first, popularity last)."""
        return list(self.manifest.get("fallback") or self.models)

    @classmethod
    def load(cls, directory: str | Path, key: bytes | _FromEnv | None = FROM_ENV,
             verified: BundleSeal | None = None) -> Bundle:
        """The bundle in ``directory``, verified first; ``BundleError`` (one line) otherwise.
        ``key``: the HMAC key bundles must be signed with (default ``KGREC_BUNDLE_KEY``; None:
        none). ``verified``: what another process verified for these very files (a Ray driver
        for its actors): files with unchanged identities are not hashed again, and its digest
        stands for the key check."""
        d = Path(directory)
        path = d / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{d}: no manifest.json; not a kgrec bundle")
        try:
            return cls._load(d, path, bundle_key() if isinstance(key, _FromEnv) else key, verified)
        except BundleError:
            raise
        except Exception as exc:  # a damaged file of any kind: say so in one line, not a traceback
            raise BundleError(f"{d}: cannot be loaded: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def _load(cls, d: Path, path: Path, key: bytes | None, verified: BundleSeal | None) -> Bundle:
        raw = path.read_bytes()
        if not (d / SEAL).is_file():
            found = _format_of(raw)
            if found != BUNDLE_FORMAT:
                raise BundleError(f"{d}: bundle format {found} (unsealed manifest, compressed arrays) is no longer "
                                  f"read: retrain with kgrec train (format {BUNDLE_FORMAT})")
            raise BundleError(f"{d}: {SEAL} is missing: the manifest is not protected")
        seal = check_seal(d, raw, key, verified)
        manifest = json.loads(raw.decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{d}: bundle format {_format_of(raw)} is not {BUNDLE_FORMAT}: retrain with kgrec train")
        files = verify_files(d, manifest.get("files"), verified.identities if verified is not None else None)
        seal = BundleSeal(seal.digest, seal.signed, seal.authenticated, dict(files.identities))
        with verified_files(files):
            snapshot = GraphSnapshot.load(d / "snapshot")
            expected = manifest["snapshot"]["fingerprint"]
            if snapshot.fingerprint != expected:
                raise BundleError(f"{d}: snapshot {snapshot.fingerprint} is not the one the manifest names "
                                  f"({expected})")
            models: dict[str, Recommender] = {}
            for entry in manifest["models"]:
                models[entry["name"]] = get(entry["name"]).load(confined(d, entry["path"], "model path"), snapshot)
        missing = [n for n in manifest["fallback"] if n not in models]
        if missing:
            raise BundleError(f"{d}: the fallback order names models the bundle lacks: {', '.join(missing)}")
        return cls(snapshot, models, manifest, seal)


def fit_models(snapshot: GraphSnapshot, names: Sequence[str], seed: int = 42,
               configs: dict[str, dict[str, Any]] | None = None,
               progress: Callable[[str, float], None] | None = None,
               cut_fitted: Mapping[str, Recommender] | None = None,
               warm: WarmStart | None = None) -> dict[str, Recommender]:
    """Fit each named recommender (defaults, the seed, and any per-name overrides). A model
    built from others (``composes``: the hybrid) is fitted after the rest and takes those it
    would fit the same way instead of refitting them on the whole snapshot, and the ones the
    tuner fitted on its validation cut (``cut_fitted``) instead of refitting them there. With
    ``warm`` (``kgrec train --warm-start``) the models that can start from their old selves do."""
    configs = configs or {}
    order = _with_last_resort(names)
    fitted: dict[str, Recommender] = {}
    for name in sorted(order, key=lambda n: get(n).composes):  # stable: composed models last
        rec = create(name, **{"seed": seed, **configs.get(name, {})})
        started = time.perf_counter()
        rec.fit(snapshot, FitContext(fitted=dict(fitted), cut_fitted=dict(cut_fitted or {}), warm=warm))
        if progress is not None:
            progress(name, time.perf_counter() - started)
        fitted[name] = rec
    return {name: fitted[name] for name in order}


def save_bundle(directory: str | Path, snapshot: GraphSnapshot, models: dict[str, Recommender],
                seed: int = 42, overwrite: bool = False, extra: Mapping[str, Any] | None = None,
                key: bytes | _FromEnv | None = FROM_ENV) -> Path:
    """Write a bundle atomically (temp dir + rename); refuses to replace one unless asked.
    ``extra`` adds manifest fields (``tuning``, ``hybrid``: see the module docstring); the
    seal is signed with ``key`` (default ``KGREC_BUNDLE_KEY``, unsigned when unset)."""
    d = Path(directory)
    key = bundle_key() if isinstance(key, _FromEnv) else key
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
        write_seal(tmp, key)
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


def _format_of(manifest: bytes) -> object:
    """The ``format`` an unverified manifest claims (only to word a refusal), or ``?``."""
    try:
        value = json.loads(manifest.decode("utf-8"))
    except ValueError:
        return "?"
    return value.get("format", "?") if isinstance(value, dict) else "?"


def _with_last_resort(names: Sequence[str]) -> list[str]:
    out = [n for n in dict.fromkeys(names) if n != LAST_RESORT]
    return [*out, LAST_RESORT]
