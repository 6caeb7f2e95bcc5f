"""Arrays on disk (``graph.array_files``): an uncompressed ``.npz`` per owner whose members are
mapped read-only at 64-byte aligned offsets, readable by ``numpy.load`` too; never unpickled; an
archive rewritten while mapped leaves the mapping intact; one that changed after it was verified
is not mapped; single ``.npy`` files (embedding artifacts) map the same way."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from kgrec.graph.array_files import (
    ALIGN,
    ArrayFileError,
    FileIdentity,
    VerifiedFiles,
    array_names,
    map_array,
    map_arrays,
    save_array,
    save_arrays,
    verified_files,
)

ARRAYS = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
    "f64.data": np.linspace(0, 1, 7),
    "i32": np.arange(5, dtype=np.int32),
    "flags": np.array([True, False, True]),
    "c64": (np.arange(4) + 1j).astype(np.complex64),
    "records": np.array([(1, 2), (3, 4)], dtype=[("user", np.int32), ("ts", np.int64)]),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided": np.arange(20.0)[::3],
    "empty": np.zeros((0, 3)),
}


def test_round_trip_maps_every_dtype_read_only_and_aligned(tmp_path):
    save_arrays(tmp_path / "arrays", ARRAYS)
    assert array_names(tmp_path / "arrays") == sorted(ARRAYS)
    back = map_arrays(tmp_path / "arrays")
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(back[name], array)
        assert back[name].dtype == array.dtype and not back[name].flags.writeable
        if array.size:
            assert back[name].ctypes.data % ALIGN == 0, name  # the mapping is page aligned
    assert back["fortran"].flags.f_contiguous
    with pytest.raises(ValueError, match="read-only"):
        back["f32"][0, 0] = 1.0
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as z:  # numpy's own reader agrees
        for name, array in ARRAYS.items():
            np.testing.assert_array_equal(z[name], array)
    with zipfile.ZipFile(tmp_path / "arrays.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}


def test_equal_arrays_give_equal_bytes(tmp_path):
    save_arrays(tmp_path / "a", ARRAYS)
    save_arrays(tmp_path / "b", dict(ARRAYS))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_only_the_named_arrays_and_a_clear_error_for_a_missing_one(tmp_path):
    save_arrays(tmp_path / "arrays", ARRAYS)
    assert set(map_arrays(tmp_path / "arrays", ["i32", "flags"])) == {"i32", "flags"}
    with pytest.raises(ArrayFileError, match="no array named nope"):
        map_arrays(tmp_path / "arrays", ["i32", "nope"])


def test_objects_are_never_saved_nor_unpickled(tmp_path):
    with pytest.raises(ValueError, match="Python objects"):
        save_arrays(tmp_path / "arrays", {"x": np.array([object()])})
    np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))  # numpy pickles it
    with pytest.raises(ArrayFileError, match="Python objects"):
        map_arrays(tmp_path / "pickled")
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArrayFileError, match="Python objects"):
        map_array(tmp_path / "x.npy")


def test_compressed_members_are_refused(tmp_path):
    np.savez_compressed(tmp_path / "small.npz", a=np.arange(100.0))
    with pytest.raises(ArrayFileError, match="compressed or encrypted"):
        map_arrays(tmp_path / "small")


def test_a_plain_numpy_archive_maps_unaligned(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(7.0), b=np.arange(3, dtype=np.int16))
    back = map_arrays(tmp_path / "plain")
    np.testing.assert_array_equal(back["a"], np.arange(7.0))
    np.testing.assert_array_equal(back["b"], np.arange(3))


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda b: b[:-3], "not an .npz archive"),
    (lambda b: b"XX" + b[2:], "damaged local header"),
    (lambda b: b"nothing like a zip", "not an .npz archive"),
])
def test_damaged_archives_are_refused(tmp_path, damage, needle):
    save_arrays(tmp_path / "arrays", {"a": np.arange(10.0)})
    path = tmp_path / "arrays.npz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ArrayFileError, match=needle):
        map_arrays(tmp_path / "arrays")


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda b: b[:-3], "bytes of data where its header says"),
    (lambda b: b + b"xx", "bytes of data where its header says"),
    (lambda b: b"PK\x03\x04" + b[4:], "not an .npy array file"),
])
def test_damaged_npy_files_are_refused(tmp_path, damage, needle):
    save_array(tmp_path / "a.npy", np.arange(10.0))
    path = tmp_path / "a.npy"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ArrayFileError, match=needle):
        map_array(path)


def test_saving_again_leaves_live_mappings_intact(tmp_path):
    save_arrays(tmp_path / "arrays", {"a": np.arange(1000.0), "old": np.ones(3)})
    live = map_arrays(tmp_path / "arrays")["a"]
    save_arrays(tmp_path / "arrays", {"a": np.zeros(10)})  # a new file renamed over the old one: no truncation
    np.testing.assert_array_equal(live, np.arange(1000.0))
    np.testing.assert_array_equal(map_arrays(tmp_path / "arrays")["a"], np.zeros(10))
    assert array_names(tmp_path / "arrays") == ["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_archive_is_held_to_the_identity_it_was_verified_with(tmp_path):
    save_arrays(tmp_path / "a", {"x": np.arange(5.0)})
    save_arrays(tmp_path / "b", {"x": np.arange(5.0)})
    a, b = (os.path.abspath(tmp_path / f"{n}.npz") for n in "ab")
    ident = FileIdentity.of(os.stat(a))
    with verified_files(VerifiedFiles({a: ident, b: FileIdentity.of(os.stat(b))}, same_as={b: a})):
        first = map_arrays(tmp_path / "a")["x"]
        assert map_arrays(tmp_path / "b")["x"] is first  # equal content, one mapping
    changed = VerifiedFiles({a: ident._replace(ctime_ns=ident.ctime_ns - 1)})
    with verified_files(changed), pytest.raises(ArrayFileError, match="changed after the bundle was verified"):
        map_arrays(tmp_path / "a")
