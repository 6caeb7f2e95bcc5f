"""The one way to turn a bundle directory written by ``kgrec train`` into a ``Server``.

The API, ``kgrec recommend``/``writeback`` and every batch worker load bundles here, so a
bundle that one of them serves, the others serve the same way. Failures are one error type,
``BundleLoadError``, that each caller words for its own user (the API as a settings error).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kgrec.recommenders.serving.server import Server

if TYPE_CHECKING:
    from kgrec.recommenders.bundle.integrity import BundleSeal


class BundleLoadError(Exception):
    """A bundle that cannot be served: missing or inconsistent files, or no such default model.

    ``model`` is the default model asked for when that is what is wrong, else None.
    """

    def __init__(self, message: str, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


def load_server(directory: str | Path, default_model: str | None = None, max_reasons: int = 5,
                verified: BundleSeal | None = None) -> Server:
    """Load the bundle at ``directory`` once and serve it, ``default_model`` first. The bundle
    is verified here (its seal, ``KGREC_BUNDLE_KEY``, every file's digest) and its arrays are
    mapped read-only, so processes forked afterwards (gunicorn workers) share both the check and
    the pages. ``verified``: what another process verified for these files (``Server.seal``,
    handed to Ray actors), so that unchanged files are compared by ``os.stat``, not hashed again."""
    from kgrec.recommenders.bundle.model_bundle import Bundle  # numpy-heavy: only when a bundle is loaded
    from kgrec.recommenders.saved_arrays import BundleError

    try:
        bundle = Bundle.load(directory, verified=verified)
    except BundleError as exc:  # one line that already names the bundle and the file
        raise BundleLoadError(str(exc)) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise BundleLoadError(f"cannot load bundle {directory}: {exc}") from exc
    if default_model is not None and default_model not in bundle.models:
        raise BundleLoadError(f"{default_model!r} is not in the bundle ({', '.join(sorted(bundle.models))})",
                              model=default_model)
    try:
        return Server.from_bundle(bundle, default_model, max_reasons)
    except ValueError as exc:  # a default model that serves no lists (it predicts ratings only)
        raise BundleLoadError(str(exc), model=default_model) from exc
