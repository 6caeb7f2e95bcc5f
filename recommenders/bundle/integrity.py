"""Tamper evidence and authentication for bundles: file digests, a sealed manifest, confined paths.

What protects a bundle (format 2):

- ``manifest.json`` records a SHA-256 of every other file (``files``), so the manifest's own
  SHA-256 covers every byte of the bundle: it is the **bundle digest** (``sha256:<hex>``), which
  ``/v1/health`` and the startup lines report;
- ``bundle.seal``, a small canonical JSON file beside it, records that digest, and, when
  ``kgrec train`` ran with ``KGREC_BUNDLE_KEY`` set, an HMAC-SHA256 of it under that key; the
  seal carries a checksum of its own fields, so an edit of the seal is told from an edit of the
  manifest. Without a key the seal detects change (a careless edit, a damaged copy), not a
  forger, who can recompute digests; with the key set, loading refuses a bundle that is not
  signed, or signed with another key, so only holders of the key can make bundles that load.

``check_seal`` runs first and reads nothing but those two small files; ``verify_files`` then
holds every file to its digest (missing, extra, changed: each refusal names the file), hashing
through a read-only mapping so that the pages it reads are the page cache's, which the loaded
arrays then map (``graph.array_files``). It returns what it checked (each file's identity: device,
inode, size and times), so that processes handed the same files — gunicorn workers forked after
the check, Ray actors on the same machine — compare ``os.stat`` instead of hashing again, and
the loaders refuse a file that changed between the check and its mapping. Every refusal is one
``BundleError`` line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kgrec.graph.array_files import FileIdentity, VerifiedFiles
from kgrec.recommenders.saved_arrays import BundleError

MANIFEST = "manifest.json"
SEAL = "bundle.seal"
#: The files the digests in the manifest do not cover (they cover each other).
UNLISTED = frozenset({MANIFEST, SEAL})
SEAL_FORMAT = 1
KEY_ENV = "KGREC_BUNDLE_KEY"
_SEAL_KEYS = ("format", "manifest_sha256", "hmac_sha256", "seal_sha256")
_MAC_CONTEXT = b"kgrec bundle seal 1\n"


@dataclass(frozen=True)
class BundleSeal:
    """What the load of one bundle verified: its digest (the manifest's SHA-256), whether it is
    signed and whether the signature was checked with ``KGREC_BUNDLE_KEY``, and each file's
    identity (by absolute path) when it was hashed."""

    digest: str
    signed: bool
    authenticated: bool
    identities: Mapping[str, FileIdentity] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """``sha256:… (signed, key checked)``: the digest and its signature state, for logs."""
        state = ("signed, key checked" if self.authenticated else "signed, no key to check it" if self.signed
                 else "unsigned")
        return f"{self.digest} ({state})"


def bundle_key(env: Mapping[str, str] | None = None) -> bytes | None:
    """``KGREC_BUNDLE_KEY`` as bytes, or None when unset; set but empty is refused."""
    value = (os.environ if env is None else env).get(KEY_ENV)
    if value is None:
        return None
    if not value:
        raise BundleError(f"{KEY_ENV} is set but empty: unset it, or give the key bundles are signed with")
    return value.encode("utf-8")


def sha256_file(path: Path) -> tuple[str, FileIdentity]:
    """The file's SHA-256 (read through a read-only mapping) and its identity; refused when the
    file changes while it is read."""
    with path.open("rb") as fh:
        before = FileIdentity.of(os.fstat(fh.fileno()))
        if before.size == 0:
            digest = hashlib.sha256().hexdigest()
        else:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapping:
                digest = hashlib.sha256(mapping).hexdigest()
        after = FileIdentity.of(os.fstat(fh.fileno()))
    if after != before:
        raise BundleError(f"{path.name} changed while it was being verified")
    return digest, before


def _mac(key: bytes, manifest_sha256: str) -> str:
    return hmac.new(key, _MAC_CONTEXT + manifest_sha256.encode("ascii"), hashlib.sha256).hexdigest()


def _self_check(fields: Mapping[str, Any]) -> str:
    body = {k: fields[k] for k in _SEAL_KEYS if k != "seal_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal_text(manifest_bytes: bytes, key: bytes | None) -> str:
    """The seal of a manifest: canonical JSON, one line."""
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    fields: dict[str, Any] = {"format": SEAL_FORMAT, "manifest_sha256": digest,
                              "hmac_sha256": _mac(key, digest) if key is not None else None}
    fields["seal_sha256"] = _self_check(fields)
    return json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n"


def write_seal(directory: Path, key: bytes | None) -> None:
    """Seal ``directory``'s manifest (signed when ``key`` is given)."""
    (directory / SEAL).write_text(seal_text((directory / MANIFEST).read_bytes(), key), encoding="ascii")


def check_seal(directory: Path, manifest_bytes: bytes, key: bytes | None,
               verified: BundleSeal | None = None) -> BundleSeal:
    """Hold the manifest to ``bundle.seal``, and the seal to ``key`` when one is set. What
    another process ``verified`` (with its key) for these very files stands for the key check
    when the manifest still has that digest."""
    d = directory
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    try:
        raw = (d / SEAL).read_bytes()
        fields = json.loads(raw.decode("ascii"))
        canonical = (isinstance(fields, dict) and set(fields) == set(_SEAL_KEYS)
                     and raw.decode("ascii") == json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n")
    except (UnicodeDecodeError, ValueError):
        canonical = False
    if not canonical or fields["seal_sha256"] != _self_check(fields) or fields["format"] != SEAL_FORMAT:
        raise BundleError(f"{d}: {SEAL} was changed or damaged (not the seal kgrec train wrote)")
    if not hmac.compare_digest(str(fields["manifest_sha256"]), digest):
        raise BundleError(f"{d}: {MANIFEST} was changed after the bundle was written (its SHA-256 is not "
                          f"the one {SEAL} records)")
    mac = fields["hmac_sha256"]
    signed = isinstance(mac, str)
    if verified is not None:
        if not hmac.compare_digest(verified.digest, f"sha256:{digest}"):
            raise BundleError(f"{d}: {MANIFEST} is not the one verified before it was handed over")
        return BundleSeal(verified.digest, verified.signed, verified.authenticated)
    if key is None:
        return BundleSeal(f"sha256:{digest}", signed, False)
    if not signed:
        raise BundleError(f"{d}: the bundle is not signed, and {KEY_ENV} is set: only bundles signed with "
                          "that key load (train it with the key set)")
    if not hmac.compare_digest(mac, _mac(key, digest)):
        raise BundleError(f"{d}: {SEAL} is signed with another key than {KEY_ENV}: refused")
    return BundleSeal(f"sha256:{digest}", True, True)


def digest_files(directory: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``directory`` but the manifest and seal."""
    return {p.relative_to(directory).as_posix(): sha256_file(p)[0]
            for p in sorted(directory.rglob("*")) if p.is_file() and p.relative_to(directory).as_posix()
            not in UNLISTED}


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


def verify_files(directory: Path, recorded: object,
                 trusted: Mapping[str, FileIdentity] | None = None) -> VerifiedFiles:
    """Refuse unless the files under ``directory`` are exactly those recorded, byte for byte.
    A file whose ``os.stat`` identity equals its ``trusted`` one (verified by the process that
    handed it over) is not hashed again. Returns the identities and which files share content."""
    if not isinstance(recorded, dict) or not recorded:
        raise BundleError(f"{directory}: the manifest records no file digests; retrain with `kgrec train`")
    identities: dict[str, FileIdentity] = {}
    first: dict[str, str] = {}
    same_as: dict[str, str] = {}
    for relative, expected in sorted(recorded.items()):
        path = confined(directory, relative, "file")
        if relative in UNLISTED or not isinstance(expected, str):
            raise BundleError(f"{directory}: the manifest's digest of {relative} is not a SHA-256")
        if not path.is_file():
            raise BundleError(f"{directory}: {relative} is missing")
        key = os.path.abspath(path)
        known = (trusted or {}).get(key)
        if known is not None and FileIdentity.of(path.stat()) == known:
            identities[key] = known
        else:
            digest, identities[key] = sha256_file(path)
            if not hmac.compare_digest(digest, expected):
                raise BundleError(f"{directory}: {relative} is not the file the bundle was written with "
                                  "(its SHA-256 differs): the bundle was changed or damaged")
        same_as[key] = first.setdefault(expected, key)
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    extra = sorted(present - set(recorded) - UNLISTED)
    if extra:
        raise BundleError(f"{directory}: {extra[0]} is not part of the bundle (not in the manifest)")
    return VerifiedFiles(identities, {k: v for k, v in same_as.items() if k != v})
