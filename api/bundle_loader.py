"""Turn a bundle directory written by ``kgrec train`` into the API's ``Server``."""

from __future__ import annotations

from pathlib import Path

from api.settings import SettingsError
from recommenders.serving import Server


def load_server(directory: str | Path, default_model: str | None = None, max_reasons: int = 5) -> Server:
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
    return Server.from_bundle(bundle, default_model, max_reasons)
