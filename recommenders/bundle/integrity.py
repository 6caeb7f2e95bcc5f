"""Tamper evidence for bundles: file digests and confined paths.

``digest_files(dir)`` records a SHA-256 per file when a bundle is written; ``verify_files``
refuses, before anything is parsed, a bundle whose files differ from what was recorded (a
shuffled, truncated or replaced array, a file added or removed) or whose manifest names a path
outside the bundle. Each model then holds its own arrays to its declaration
(``recommenders.saved_arrays``). Every refusal is one ``BundleError`` line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from kgrec.recommenders.saved_arrays import BundleError

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_files(directory: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``directory`` but the manifest."""
    return {p.relative_to(directory).as_posix(): _sha256(p)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}


def confined(directory: Path, relative: object, what: str) -> Path:
    """``directory / relative`` when ``relative`` is a plain relative path that stays inside
    ``directory`` (no ``..``, no absolute path, no symlink leading out); BundleError otherwise."""
    if not isinstance(relative, str) or not relative:
        raise BundleError(f"{directory}: {what} {relative!r} is not a relative path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative:
        raise BundleError(f"{directory}: {what} {relative!r} points outside the bundle")
    path = directory / pure
    if not path.resolve().is_relative_to(directory.resolve()):
        raise BundleError(f"{directory}: {what} {relative!r} leads outside the bundle")
    return path


def verify_files(directory: Path, recorded: object) -> None:
    """Refuse unless the files under ``directory`` are exactly those recorded, byte for byte."""
    if not isinstance(recorded, dict) or not recorded:
        raise BundleError(f"{directory}: the manifest records no file digests (bundles written before kgrec "
                          "checked them are refused); train it again with `kgrec train`")
    for relative, expected in recorded.items():
        path = confined(directory, relative, "file")
        if not path.is_file():
            raise BundleError(f"{directory}: {relative} is missing")
        if not isinstance(expected, str) or _sha256(path) != expected:
            raise BundleError(f"{directory}: {relative} is not the file the bundle was written with "
                              "(its SHA-256 differs): the bundle was changed or damaged")
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    extra = sorted(present - set(recorded) - {MANIFEST})
    if extra:
        raise BundleError(f"{directory}: {extra[0]} is not part of the bundle (not in the manifest)")
