"""An old bundle as the starting point of ``kgrec train --warm-start`` and its manifest record.

``open_warm_start`` verifies and loads the old bundle like any other (``Bundle.load``: digests,
seal, arrays), keeps the models that can start warm (``StartsWarm``) with the bundle's own
snapshot, and reads from its manifest what the next warm start needs (``history``: consecutive
warm starts per model). ``warm_manifest`` is what the new bundle's manifest records under
``warm_start``: which bundle (path, digest, snapshot fingerprint), how it was matched, and per
model the decision with its reason, the validation curve (epoch, NDCG@10), epochs trained, how
the rows were initialised (copied, derived from neighbours, left at the default) and CPU seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kgrec.recommenders.base import Recommender, StartsWarm, WarmStart
from kgrec.recommenders.bundle.model_bundle import Bundle


def open_warm_start(directory: str | Path, **options: Any) -> WarmStart:
    """The bundle in ``directory`` as a ``WarmStart`` (``options``: its guard settings)."""
    bundle = Bundle.load(directory)
    models = {name: rec for name, rec in bundle.models.items() if isinstance(rec, StartsWarm)}
    recorded = bundle.manifest.get("warm_start", {})
    past = recorded.get("models", {}) if isinstance(recorded, dict) else {}
    history = {name: {"chain": int(entry.get("chain", 0))} for name, entry in past.items() if isinstance(entry, dict)}
    return WarmStart(source=str(Path(directory)), digest=bundle.seal.digest if bundle.seal else "",
                     fingerprint=bundle.snapshot.fingerprint, snapshot=bundle.snapshot, models=models,
                     history=history, **options)


def old_configs(warm: WarmStart) -> dict[str, dict[str, Any]]:
    """The old bundle's options of each model that can start warm (its seed left out): a warm
    start keeps the options it starts from instead of tuning them again."""
    out = {}
    for name, rec in warm.models.items():
        values = {k: v for k, v in vars(rec.config).items() if k != "seed"}
        out[name] = values
    return out


def warm_manifest(warm: WarmStart, models: Mapping[str, Recommender]) -> dict[str, Any]:
    """The ``warm_start`` manifest field of a bundle trained from ``warm``."""
    records = {name: rec.warm_record for name, rec in models.items()
               if isinstance(rec, StartsWarm) and rec.warm_record is not None}
    return {"from": warm.source, "digest": warm.digest, "fingerprint": warm.fingerprint,
            "across": warm.across, "tag_names": warm.tag_names, "check_cold": warm.check_cold,
            "warm": sorted(n for n, r in records.items() if r.get("decision") == "warm"),
            "cold": sorted(n for n, r in records.items() if r.get("decision") != "warm"),
            "models": records}
