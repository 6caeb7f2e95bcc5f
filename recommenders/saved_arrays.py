"""A saved model's arrays, held to what the model declares before it uses them.

``check_arrays`` checks a model's arrays against its declaration (``ScoredRecommender.ARRAYS``):
the dimensions it indexes by users, items or tags equal the snapshot's, sparse matrices are
well-formed, and floats are finite unless the model allows NaN. This catches corruption the
bundle's digests cannot see: a bundle written by a buggy model, or digests recomputed over
tampered files. Every refusal is one ``BundleError`` line.

Arrays arrive mapped read-only (``graph.array_files``), so the checks read them in slices and
allocate little; a sparse matrix must be canonical (sorted column indices, no duplicates) with
one index dtype, so that scipy builds it over the mapped arrays and never sorts them in place.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot

#: A dimension of a declared array: a count of the snapshot, or None for any length.
Dim = str | None
#: The parts of a sparse matrix saved by ``recommenders.models.scored.csr_state`` under one prefix.
CSR_PARTS = ("data", "indices", "indptr", "shape")
#: Elements read at a time by the finiteness check: a bool temporary of this many bytes, small
#: enough that the allocator hands it back rather than keeping it in the heap.
CHUNK = 1 << 20


class BundleError(ValueError):
    """A bundle that cannot be trusted or read; the message is one line saying why."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _size(dim: Dim, snapshot: GraphSnapshot) -> int | None:
    return None if dim is None else len(getattr(snapshot, dim))


def _check_dense(name: str, array: np.ndarray, dims: tuple[Dim, ...], snapshot: GraphSnapshot) -> None:
    if array.ndim != len(dims):
        raise BundleError(f"array {name} has {array.ndim} dimensions, not {len(dims)}")
    for axis, (dim, got) in enumerate(zip(dims, array.shape, strict=True)):
        want = _size(dim, snapshot)
        if want is not None and got != want:
            raise BundleError(f"array {name} has {got} entries along axis {axis}; the snapshot has {want} {dim}")


def _check_csr(name: str, parts: dict[str, np.ndarray], dims: tuple[Dim, ...], snapshot: GraphSnapshot) -> None:
    data, indices, indptr, shape = (parts[p] for p in CSR_PARTS)
    if shape.shape != (2,) or len(dims) != 2:
        raise BundleError(f"sparse matrix {name} does not have a 2-d shape")
    rows, cols = (int(x) for x in shape)
    for got, dim in zip((rows, cols), dims, strict=True):
        want = _size(dim, snapshot)
        if want is not None and got != want:
            raise BundleError(f"sparse matrix {name} is {rows}x{cols}; the snapshot has {want} {dim}")
    if indptr.ndim != 1 or len(indptr) != rows + 1 or (len(indptr) and indptr[0] != 0):
        raise BundleError(f"sparse matrix {name}: its row pointers do not fit {rows} rows")
    if np.any(np.diff(indptr) < 0) or indptr[-1] != len(data) or len(indices) != len(data):
        raise BundleError(f"sparse matrix {name}: its row pointers, columns and values disagree")
    if len(indices) and (indices.min() < 0 or indices.max() >= cols):
        raise BundleError(f"sparse matrix {name}: a column index lies outside its {cols} columns")
    if indices.dtype != indptr.dtype or indices.dtype.kind != "i":
        raise BundleError(f"sparse matrix {name}: its column indices ({indices.dtype}) and row pointers "
                          f"({indptr.dtype}) are not one integer dtype")
    if not sp.csr_matrix((data, indices, indptr), shape=(rows, cols)).has_canonical_format:
        raise BundleError(f"sparse matrix {name} is not canonical (sorted columns, no duplicates)")


def all_finite(array: np.ndarray) -> bool:
    """``np.isfinite(array).all()`` a slice at a time (no temporary the size of the array)."""
    flat = array.reshape(-1, order="A") if array.flags.c_contiguous or array.flags.f_contiguous else array.ravel()
    return all(bool(np.isfinite(flat[a : a + CHUNK]).all()) for a in range(0, flat.size, CHUNK))


def check_arrays(arrays: Mapping[str, np.ndarray], declared: Mapping[str, tuple[Dim, ...]],
                 snapshot: GraphSnapshot, where: Path, nan_ok: Collection[str] = ()) -> None:
    """Hold a model's arrays to its declaration: every declared array (or sparse matrix, saved
    under ``name.data`` … ``name.shape``) present with the declared dimensions, nothing else,
    and every float array finite unless its name is in ``nan_ok``."""
    try:
        seen: set[str] = set()
        for name, dims in declared.items():
            parts = {p: arrays[f"{name}.{p}"] for p in CSR_PARTS if f"{name}.{p}" in arrays}
            if len(parts) == len(CSR_PARTS):
                _check_csr(name, parts, dims, snapshot)
                seen.update(f"{name}.{p}" for p in CSR_PARTS)
            elif name in arrays:
                _check_dense(name, arrays[name], dims, snapshot)
                seen.add(name)
            else:
                raise BundleError(f"array {name} is missing")
        extra = sorted(set(arrays) - seen)
        if declared and extra:
            raise BundleError(f"array {extra[0]} is not one this model saves")
        for name, array in arrays.items():
            base = name.split(".", 1)[0]
            if array.dtype.kind in "fc" and base not in nan_ok and not all_finite(array):
                raise BundleError(f"array {name} holds NaN or infinite values")
    except BundleError as exc:
        raise BundleError(f"{where}: {exc}") from None
