"""Turn a bundle directory written by ``kgrec train`` into the API's ``Engine``."""

from __future__ import annotations

from pathlib import Path

from api.engine import Engine
from api.overlay import InteractionOverlay
from api.settings import SettingsError


def load_engine(directory: str | Path, overlay: InteractionOverlay | None = None,
                default_model: str | None = None) -> Engine:
    """Load the bundle once; a missing or inconsistent bundle is a startup error."""
    from recommenders.bundle import Bundle

    try:
        bundle = Bundle.load(directory)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise SettingsError(f"KGREC_BUNDLE: cannot load {directory}: {exc}") from exc
    if default_model is not None and default_model not in bundle.models:
        raise SettingsError(
            f"KGREC_DEFAULT_MODEL: {default_model!r} is not in the bundle ({', '.join(sorted(bundle.models))})"
        )
    chain = list(bundle.manifest.get("fallback") or bundle.chain.names)
    return Engine(bundle.snapshot, bundle.models, default_model=default_model or chain[0], overlay=overlay,
                  fingerprint=bundle.snapshot.fingerprint, fallbacks=chain)
