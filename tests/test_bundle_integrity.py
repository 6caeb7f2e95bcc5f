"""Bundles are tamper-evident and, with ``KGREC_BUNDLE_KEY``, authenticated: every file of a real
bundle — the manifest and the seal included — changed, truncated, removed, or joined by an extra
file, is refused with one line naming it, by the library, by ``kgrec recommend`` (exit 1) and by
``kgrec serve`` (the server does not start); a bundle signed with another key is refused, the
same key accepted; arrays that do not fit the snapshot are refused even when every digest was
recomputed; ``/v1/health`` reports a digest that changes with any byte of the bundle."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.cli import main
from kgrec.recommenders.bundle.integrity import KEY_ENV, MANIFEST, SEAL, digest_files, write_seal
from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle
from kgrec.recommenders.saved_arrays import BundleError

KEY, OTHER_KEY = b"kgrec-test-key-1", b"kgrec-test-key-2"


@pytest.fixture(scope="module")
def fitted(snapshot) -> dict:
    return fit_models(snapshot, ["itemcf", "als", "social"], seed=3)


@pytest.fixture(scope="module")
def trained(snapshot, fitted, tmp_path_factory) -> Path:
    return save_bundle(tmp_path_factory.mktemp("integrity") / "bundle", snapshot, fitted, key=None)


@pytest.fixture(scope="module")
def signed(snapshot, fitted, tmp_path_factory) -> Path:
    return save_bundle(tmp_path_factory.mktemp("signed") / "bundle", snapshot, fitted, key=KEY)


@pytest.fixture()
def bundle(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "bundle"))


@pytest.fixture(autouse=True)
def no_key_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def manifest(d: Path) -> dict:
    return json.loads((d / MANIFEST).read_text())


def reseal(d: Path, key: bytes | None = None, recompute: bool = True, **changes) -> None:
    """What a careless (or hostile) rewrite leaves: the manifest changed, every digest and the
    seal recomputed so that they agree again."""
    m = {**manifest(d), **changes}
    if recompute:
        m["files"] = digest_files(d)
    (d / MANIFEST).write_text(json.dumps(m, indent=2))
    write_seal(d, key)


def edit_array(archive: Path, name: str, change) -> None:
    """Rewrite one array of an ``arrays.npz`` archive: ``change(array)``, a new array, or None (removed)."""
    with np.load(archive, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if change is None:
        del arrays[name]
    else:
        arrays[name] = change if isinstance(change, np.ndarray) else change(arrays[name].copy())
    np.savez(archive, **arrays)


def refused(d: Path, needle: str, **load) -> str:
    with pytest.raises(BundleError) as err:
        Bundle.load(d, **load)
    message = str(err.value)
    assert "\n" not in message and needle in message, message
    return message


def files_of(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def test_every_file_is_recorded_and_a_clean_bundle_loads_mapped(bundle):
    files = manifest(bundle)["files"]
    assert set(files) == set(files_of(bundle)) - {MANIFEST, SEAL} and all(len(h) == 64 for h in files.values())
    arrays = [f for f in files if f.endswith(".npz")]
    assert arrays and all(f.endswith("arrays.npz") for f in arrays) and not [f for f in files if f.endswith(".npy")]
    loaded = Bundle.load(bundle)
    assert set(loaded.models) == {"itemcf", "als", "social", "popularity"}
    assert loaded.seal is not None and not loaded.seal.signed
    assert loaded.seal.digest == "sha256:" + hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest()
    sim = loaded.models["itemcf"]._sim
    assert not sim.data.flags.writeable and not loaded.snapshot.interactions.indices.flags.writeable


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("tamper", ["flip one byte", "truncate", "remove"])
def test_every_file_tampered_in_turn_is_refused_naming_it(trained, tmp_path, tamper):
    for name in files_of(trained):
        d = Path(shutil.copytree(trained, tmp_path / tamper.replace(" ", "-") / name.replace("/", "_")))
        path = d / name
        {"flip one byte": _flip, "truncate": _truncate, "remove": Path.unlink}[tamper](path)
        with pytest.raises((BundleError, FileNotFoundError)) as err:
            Bundle.load(d)
        message = str(err.value)
        assert "\n" not in message and name in message, (tamper, name, message)
        if name != MANIFEST:  # a folder without a manifest is no bundle at all: FileNotFoundError
            assert isinstance(err.value, BundleError), (tamper, name, message)


def test_an_added_file_is_refused_wherever_it_is(bundle):
    for extra in ("extra.npy", "models/itemcf/extra.npz", "models/itemcf/smuggled.npy", "snapshot/x.json"):
        path = bundle / extra
        path.write_bytes(b"x")
        refused(bundle, f"{extra} is not part of the bundle")
        path.unlink()
    Bundle.load(bundle)


def test_an_edited_manifest_is_refused_even_when_it_says_the_same(bundle):
    """The acceptance check's edit (``created`` and the fallback order), and one that changes
    only whitespace: both change the bundle's bytes, so both are refused."""
    m = manifest(bundle)
    (bundle / MANIFEST).write_text(json.dumps({**m, "created": "2000-01-01T00:00:00Z",
                                               "fallback": list(reversed(m["fallback"]))}))
    refused(bundle, "manifest.json was changed after the bundle was written")
    (bundle / MANIFEST).write_text(json.dumps(m, indent=3))
    refused(bundle, "manifest.json was changed")


def test_an_edited_seal_is_refused_as_the_seal(bundle):
    text = (bundle / SEAL).read_text()
    (bundle / SEAL).write_text(text.replace('"hmac_sha256":null', '"hmac_sha256":"00"'))
    refused(bundle, "bundle.seal was changed or damaged")
    (bundle / SEAL).write_text(json.dumps(json.loads(text), indent=1))
    refused(bundle, "bundle.seal was changed or damaged")


def test_a_format_1_bundle_is_refused_with_what_to_do(bundle):
    """A bundle written before sealed manifests and mapped arrays: no seal, format 1."""
    (bundle / SEAL).unlink()
    m = manifest(bundle)
    (bundle / MANIFEST).write_text(json.dumps({**m, "format": 1}))
    refused(bundle, "bundle format 1")
    refused(bundle, "retrain with kgrec train")
    (bundle / MANIFEST).write_text(json.dumps(m))
    refused(bundle, "bundle.seal is missing")


def test_signed_bundles_need_the_same_key(signed, trained, monkeypatch):
    assert Bundle.load(signed, key=KEY).seal.authenticated
    refused(signed, "bundle.seal is signed with another key than KGREC_BUNDLE_KEY", key=OTHER_KEY)
    refused(trained, "the bundle is not signed, and KGREC_BUNDLE_KEY is set", key=KEY)
    without = Bundle.load(signed, key=None).seal  # no key set: signed bundles load, unchecked
    assert without.signed and not without.authenticated
    monkeypatch.setenv(KEY_ENV, OTHER_KEY.decode())
    refused(signed, "signed with another key")
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert Bundle.load(signed).seal.authenticated
    monkeypatch.setenv(KEY_ENV, "")
    refused(signed, "KGREC_BUNDLE_KEY is set but empty")


def test_a_bundle_resealed_without_the_key_is_refused_with_it(signed, tmp_path):
    d = Path(shutil.copytree(signed, tmp_path / "b"))
    reseal(d, key=OTHER_KEY, fallback=list(reversed(manifest(d)["fallback"])))
    refused(d, "signed with another key", key=KEY)
    reseal(d, key=None)
    refused(d, "not signed", key=KEY)
    reseal(d, key=KEY)
    assert Bundle.load(d, key=KEY).models


def test_kgrec_train_signs_with_the_key_from_the_environment(snapshot, fitted, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    d = save_bundle(tmp_path / "b", snapshot, fitted)
    assert json.loads((d / SEAL).read_text())["hmac_sha256"]
    assert Bundle.load(d).seal.authenticated


def test_a_file_changed_after_it_was_verified_is_not_mapped(bundle, monkeypatch):
    """The identities recorded while hashing are what the loaders hold each file to."""
    from kgrec.recommenders.bundle import model_bundle

    real = model_bundle.verify_files

    def then_changed(d, recorded, trusted=None):
        files = real(d, recorded, trusted)
        edit_array(bundle / "models" / "itemcf" / "arrays.npz", "sim.data", lambda a: a[::-1])
        return files

    monkeypatch.setattr(model_bundle, "verify_files", then_changed)
    refused(bundle, "models/itemcf/arrays.npz changed after the bundle was verified")


def test_identical_files_are_mapped_once(snapshot, tmp_path):
    """A hybrid keeps its own copy of each component it serves; equal files share one mapping."""
    fitted = fit_models(snapshot, ["hybrid", "itemcf"], seed=3,
                        configs={"hybrid": {"components": ["itemcf", "popularity"], "rankers": ["logistic"]}})
    d = save_bundle(tmp_path / "b", snapshot, fitted, key=None)
    loaded = Bundle.load(d)
    shared = [(c, m) for c, m in loaded.models["hybrid"].components.items() if c in loaded.models]
    assert shared
    for name, component in shared:
        mine, top = component._state(), loaded.models[name]._state()
        assert mine.keys() == top.keys()
        mapped = [k for k in mine if mine[k].size and not k.endswith(".shape")]  # shapes are rebuilt
        assert mapped and all(np.shares_memory(mine[k], top[k]) for k in mapped), name


@pytest.mark.parametrize("path", ["../../etc", "/etc", "models/../../outside", "models\\..\\x"])
def test_manifest_paths_outside_the_bundle_are_refused(bundle, path):
    m = manifest(bundle)
    m["models"][0]["path"] = path
    reseal(bundle, models=m["models"])
    refused(bundle, "outside the bundle")
    reseal(bundle, recompute=False, files={**manifest(bundle)["files"], path: "0" * 64})
    refused(bundle, "outside the bundle")


def test_a_symlink_leading_out_is_refused(bundle, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(bundle / "models" / "itemcf", outside)
    shutil.rmtree(bundle / "models" / "itemcf")
    (bundle / "models" / "itemcf").symlink_to(outside)
    refused(bundle, "leads outside the bundle")


def test_a_bundle_without_digests_is_refused(bundle):
    m = manifest(bundle)
    del m["files"]
    (bundle / MANIFEST).write_text(json.dumps(m))
    write_seal(bundle, None)
    refused(bundle, "records no file digests")


def _arrays(model: str) -> str:
    return f"models/{model}/arrays.npz"


@pytest.mark.parametrize(("file", "change", "needle"), [
    ("als/item_factors", lambda a: a[:-1], "the snapshot has 200 items"),
    ("als/user_factors", lambda a: np.full_like(a, np.nan), "NaN"),
    ("itemcf/sim.indices", lambda a: a + 10_000, "column index lies outside"),
    ("itemcf/sim.indices", lambda a: a.astype(np.int64), "not one integer dtype"),
    ("itemcf/sim.shape", lambda a: np.array([5, 5]), "is 5x5; the snapshot has 200 items"),
    ("social/taste.data", None, "array taste is missing"),
    ("social/smuggled", np.zeros(3), "array smuggled is not one this model saves"),
])
def test_arrays_that_do_not_fit_the_snapshot_are_refused_even_when_resealed(bundle, file, change, needle):
    """Digests and seal recomputed after the change (what a careless rewrite or a buggy model
    would leave): the arrays themselves are still checked against the snapshot."""
    model, name = file.split("/")
    edit_array(bundle / _arrays(model), name, change)
    reseal(bundle)
    refused(bundle, needle)


def test_an_unsorted_sparse_matrix_is_refused_even_when_resealed(bundle):
    """Mapped matrices are read-only: one that scipy would have to sort in place is refused."""
    indptr = np.load(bundle / _arrays("itemcf"))["sim.indptr"]
    row = int(np.flatnonzero(np.diff(indptr) >= 2)[0])
    a = int(indptr[row])

    def swap(x):
        x[a], x[a + 1] = x[a + 1], x[a]
        return x

    edit_array(bundle / _arrays("itemcf"), "sim.indices", swap)
    reseal(bundle)
    refused(bundle, "sparse matrix sim is not canonical")


def test_pickled_arrays_are_refused_even_when_resealed(bundle):
    with np.load(bundle / _arrays("als")) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(bundle / _arrays("als"), **{**arrays, "item_factors": np.array([object()])})  # pickles it
    reseal(bundle)
    refused(bundle, "Python objects")


def test_kgrec_recommend_refuses_an_edited_manifest_in_one_line(bundle, tmp_path):
    """The acceptance check: ``created`` and ``fallback`` edited, ``kgrec recommend`` must fail."""
    m = manifest(bundle)
    (bundle / MANIFEST).write_text(json.dumps({**m, "created": "2000-01-01T00:00:00Z",
                                               "fallback": list(reversed(m["fallback"]))}))
    result = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--user", "u0001"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "manifest.json" in lines[0], result.output


def test_kgrec_recommend_refuses_a_tampered_array_in_one_line(bundle, tmp_path):
    edit_array(bundle / _arrays("itemcf"), "sim.data", lambda a: a[::-1])
    users = tmp_path / "users.txt"
    users.write_text("u0001\n")
    result = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--users", str(users),
                                       "--output", str(tmp_path / "r.csv")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "SHA-256" in lines[0] and "models/itemcf/arrays.npz" in lines[0]
    assert not (tmp_path / "r.csv").exists()


def test_kgrec_recommend_reports_the_digest_and_honours_the_key(signed, tmp_path, monkeypatch):
    users = tmp_path / "users.txt"
    users.write_text("u0001\n")
    args = ["recommend", "--bundle", str(signed), "--users", str(users), "--output", str(tmp_path / "r.csv")]
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    ok = CliRunner().invoke(main, args)
    digest = "sha256:" + hashlib.sha256((signed / MANIFEST).read_bytes()).hexdigest()
    assert ok.exit_code == 0 and f"{digest} (signed, key checked)" in ok.stderr, ok.output
    monkeypatch.setenv(KEY_ENV, OTHER_KEY.decode())
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1 and "another key" in bad.output


def test_kgrec_serve_refuses_to_start_on_a_tampered_bundle(bundle, tmp_path):
    _flip(bundle / "snapshot" / "arrays.npz")
    result = CliRunner().invoke(main, ["serve", "--bundle", str(bundle), "--store", f"memory://{tmp_path}/s"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "KGREC_BUNDLE" in lines[0] and "snapshot/arrays.npz" in lines[0]


def test_health_reports_a_digest_that_changes_with_any_byte(bundle, trained, tmp_path):
    def health(d: Path) -> dict:
        app = create_app(Settings.from_env({"KGREC_BUNDLE": str(d), "KGREC_STORE": f"memory://{tmp_path}/s"}))
        return app.test_client().get("/v1/health").get_json()["bundle"]

    before = health(trained)
    assert before["digest"] == "sha256:" + hashlib.sha256((trained / MANIFEST).read_bytes()).hexdigest()
    assert before["signed"] is False and before["signature_checked"] is False
    # One bit of one array's first value flipped, and the bundle resealed (a legitimately
    # different bundle that loads).
    def nudge(a: np.ndarray) -> np.ndarray:
        a.reshape(-1).view(np.uint8)[0] ^= 0x01  # the lowest byte of a little-endian float: still finite
        return a

    edit_array(bundle / _arrays("als"), "item_factors", nudge)
    reseal(bundle)
    after = health(bundle)
    assert after["fingerprint"] == before["fingerprint"] and after["digest"] != before["digest"]
