"""Numeric arrays on disk, mapped read-only when read.

Snapshots and models save their arrays as one uncompressed ``.npz`` archive each
(``save_arrays``: numpy's own format, so ``numpy.load`` reads it too), written with every
member's data aligned to 64 bytes; ``map_arrays`` maps the archive once and each member is a
read-only view at its offset. Embedding artifacts keep one ``.npy`` per array (``save_array`` /
``map_array``), the format analysts open. Every header is parsed by numpy's own ``.npy`` reader
(no pickle: an object dtype is refused); a compressed or encrypted member is refused. The
pages are the page cache's, so every process that maps the same file (gunicorn workers, Ray
actors on one machine, the master before the fork) shares one copy, and nothing is decompressed
or copied at load. An in-place write to a loaded array fails ("read-only").

Files must not change while mapped (a file truncated under a live mapping kills the reader with
SIGBUS): bundles are written to a new directory and renamed into place, never edited.

Verification (``recommenders.bundle.integrity``) happens before any array is used, inside
``verified_files``: it records each file's identity (device, inode, size, modification and
change times) as it hashed it, and ``map_arrays`` refuses a file whose identity differs by the
time it is mapped, so what is served is what was hashed. Files with equal content (a hybrid's
copy of a component saved beside the component itself) are mapped once.
"""

from __future__ import annotations

import io
import mmap
import os
import re
import struct
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

SUFFIX = ".npy"
ARCHIVE = ".npz"
#: Member data starts on this boundary (numpy pads ``.npy`` headers to 64 bytes, so the array does too).
ALIGN = 64
#: The extra-field id that pads a zip local header to ``ALIGN`` (the one Android's zipalign uses).
_PAD_ID = 0xD935
_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Array names become file names: letters, digits, ``_ . -``, not starting with a dot.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}")
#: numpy's own bound on a ``.npy`` header (``max_header_size``): a larger header is refused.
MAX_HEADER = 10_000


class FileIdentity(NamedTuple):
    """What tells one file from another and from its earlier self, without reading it: a
    change of content changes the size or the change time (``st_ctime_ns``, which no user can
    set back)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ArrayFileError(ValueError):
    """An array file that cannot be mapped: not ``.npy``, an object dtype, a size that does not
    match its header, or a file that changed after it was verified."""


@dataclass
class VerifiedFiles:
    """Files checked before use: by absolute path, their identity when hashed, and the path of
    the first file with the same content (mapped once for both)."""

    identities: dict[str, FileIdentity]
    same_as: dict[str, str] = field(default_factory=dict)
    mapped: dict[str, Any] = field(default_factory=dict)


_VERIFIED: ContextVar[VerifiedFiles | None] = ContextVar("kgrec_verified_files", default=None)


@contextmanager
def verified_files(files: VerifiedFiles) -> Iterator[VerifiedFiles]:
    """Inside, ``map_array`` holds the files ``files`` names to their recorded identities."""
    token = _VERIFIED.set(files)
    try:
        yield files
    finally:
        _VERIFIED.reset(token)


def save_arrays(path: str | Path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` as the uncompressed archive ``<path>.npz`` (object arrays refused), each
    member's data 64-byte aligned and the bytes a function of the arrays alone (fixed member
    times), so equal content gives an equal file. Written beside its place and renamed over it:
    a process that maps the old archive keeps reading the old one intact."""
    target = Path(f"{path}{ARCHIVE}")
    target.parent.mkdir(parents=True, exist_ok=True)
    checked = {}
    for name, value in arrays.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"array name {name!r} cannot be a file name")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError(f"array {name} holds Python objects; only numbers are saved")
        checked[name] = array
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, array in checked.items():
                _write_member(z, fh, f"{name}{SUFFIX}", array)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_member(z: zipfile.ZipFile, fh: Any, member: str, array: np.ndarray) -> None:
    header = _npy_header(array)
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous  # numpy's own rule
    data = np.ascontiguousarray(array.T if fortran else array).reshape(-1).view(np.uint8)
    size = len(header) + len(data)
    info = zipfile.ZipInfo(member, date_time=_EPOCH)
    info.compress_type, info.file_size = zipfile.ZIP_STORED, size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # as ``ZipFile.open(.., "w")`` decides it
    pad = -(fh.tell() + 30 + len(member.encode()) + 4 + (20 if zip64 else 0)) % ALIGN
    info.extra = struct.pack("<HH", _PAD_ID, pad) + bytes(pad)
    with z.open(info, "w", force_zip64=zip64) as out:
        out.write(header)
        out.write(data.data)


def _npy_header(array: np.ndarray) -> bytes:
    """The ``.npy`` header ``numpy.save`` would write (version 1.0, or 2.0 when it does not fit)."""
    fields = np.lib.format.header_data_from_array_1_0(array)
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, fields)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, fields)
    return buf.getvalue()


def array_names(path: str | Path) -> list[str]:
    """The names of the arrays in ``<path>.npz``, sorted."""
    return sorted(map_arrays(path))


def map_arrays(path: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Every array of ``<path>.npz`` (or those named), each a read-only view of one read-only
    mapping of the archive (mapped once per process while its files are verified)."""
    file = f"{path}{ARCHIVE}"
    key = os.path.abspath(file)
    verified = _VERIFIED.get()
    if verified is not None:
        key = verified.same_as.get(key, key)
    if verified is not None and key in verified.mapped:
        arrays = verified.mapped[key]
    else:
        with open(key, "rb") as fh:
            ident = FileIdentity.of(os.fstat(fh.fileno()))
            if verified is not None and key in verified.identities and verified.identities[key] != ident:
                raise ArrayFileError(f"{file} changed after the bundle was verified")
            arrays = _map_archive(fh, ident.size, file)
        if verified is not None:
            verified.mapped[key] = arrays
    if names is None:
        return dict(arrays)
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise ArrayFileError(f"{file}: no array named {', '.join(missing)}")
    return {n: arrays[n] for n in names}


def _map_archive(fh: Any, size: int, path: str) -> dict[str, np.ndarray]:
    try:
        members = zipfile.ZipFile(fh).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArrayFileError(f"{path}: not an .npz archive ({exc})") from None
    mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    out: dict[str, np.ndarray] = {}
    for info in members:
        name = info.filename[: -len(SUFFIX)] if info.filename.endswith(SUFFIX) else ""
        where = f"{path}:{info.filename}"
        if not _NAME.fullmatch(name) or name in out:
            raise ArrayFileError(f"{where}: not a .npy member with an array name")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1 or info.compress_size != info.file_size:
            raise ArrayFileError(f"{where}: compressed or encrypted (only stored members are mapped)")
        local = bytes(mapping[info.header_offset:info.header_offset + 30])
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise ArrayFileError(f"{where}: damaged local header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        if start + info.file_size > size:
            raise ArrayFileError(f"{where}: runs past the end of the file")
        out[name] = _view(mapping, start, info.file_size, where)
    return out


def map_array(path: str | Path) -> np.ndarray:
    """The array in the ``.npy`` file at ``path``, a read-only view of a read-only mapping."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    return _view(mapping, 0, size, str(path))


def save_array(path: str | Path, array: Any) -> None:
    """Write one array as the ``.npy`` file ``path`` (beside its place, renamed over it)."""
    target = Path(path)
    value = np.asarray(array)
    if value.dtype.hasobject:
        raise ValueError(f"{target.name} holds Python objects; only numbers are saved")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            np.lib.format.write_array(fh, value, allow_pickle=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _view(mapping: Any, start: int, length: int, where: str) -> np.ndarray:
    """The ``.npy`` held in ``mapping[start:start + length]`` as a read-only array over it."""
    head = io.BytesIO(bytes(mapping[start:start + min(length, MAX_HEADER + 16)]))
    try:
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(head, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(head, max_header_size=MAX_HEADER)
        else:
            raise ArrayFileError(f"{where}: .npy version {version} is not supported")
    except ArrayFileError:
        raise
    except (ValueError, OSError, SyntaxError) as exc:
        raise ArrayFileError(f"{where}: not an .npy array file ({exc})") from None
    if dtype.hasobject:
        raise ArrayFileError(f"{where}: holds Python objects (refused: no pickle)")
    offset = head.tell()
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + nbytes != length:
        raise ArrayFileError(f"{where}: {length - offset} bytes of data where its header says {nbytes}")
    order: Literal["C", "F"] = "F" if fortran else "C"
    if nbytes == 0:
        empty = np.empty(shape, dtype=dtype, order=order)
        empty.setflags(write=False)
        return empty
    return np.ndarray(shape, dtype=dtype, buffer=mapping, offset=start + offset, order=order)


def index_dtype(*sizes: int) -> type[np.integer]:
    """One index dtype for a sparse matrix's indices and row pointers: int32 when every size
    fits, else int64 (scipy then builds the matrix over both without converting either)."""
    return np.int32 if max(sizes, default=0) < np.iinfo(np.int32).max else np.int64


__all__ = ["ArrayFileError", "FileIdentity", "VerifiedFiles", "array_names", "index_dtype", "map_array",
           "map_arrays", "save_array", "save_arrays", "verified_files"]
