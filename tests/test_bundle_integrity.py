"""Bundles are tamper-evident: changed, truncated, added or missing files, paths leading out of
the bundle, and arrays that do not fit the snapshot are refused with one line, by the library,
by ``kgrec recommend`` (exit 1) and by ``kgrec serve`` (the server does not start)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.recommenders.bundle.integrity import digest_files
from kgrec.recommenders.bundle.model_bundle import Bundle, fit_models, save_bundle
from kgrec.recommenders.saved_arrays import BundleError


@pytest.fixture(scope="module")
def trained(snapshot, tmp_path_factory) -> Path:
    return save_bundle(tmp_path_factory.mktemp("integrity") / "bundle", snapshot,
                       fit_models(snapshot, ["itemcf", "als", "social"], seed=3))


@pytest.fixture()
def bundle(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "bundle"))


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def rewrite_manifest(d: Path, **changes) -> None:
    m = {**manifest(d), **changes}
    (d / "manifest.json").write_text(json.dumps(m))


def edit_npz(path: Path, change) -> None:
    arrays = dict(np.load(path, allow_pickle=False))
    change(arrays)
    np.savez(path, **arrays)


def refused(d: Path, needle: str) -> str:
    with pytest.raises(BundleError) as err:
        Bundle.load(d)
    message = str(err.value)
    assert "\n" not in message and needle in message, message
    return message


def test_every_file_is_recorded_and_a_clean_bundle_loads(bundle):
    files = manifest(bundle)["files"]
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk and all(len(h) == 64 for h in files.values())
    assert set(Bundle.load(bundle).models) == {"itemcf", "als", "social", "popularity"}


def test_a_reversed_array_is_refused(bundle):
    """The acceptance check's tamper: a float array of models/itemcf reversed in place."""
    path = bundle / "models" / "itemcf" / "arrays.npz"
    edit_npz(path, lambda a: a.update({"sim.data": a["sim.data"][::-1].copy()}))
    refused(bundle, "models/itemcf/arrays.npz is not the file the bundle was written with")


def test_a_truncated_npz_is_one_line(bundle):
    path = bundle / "models" / "als" / "arrays.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(bundle, "models/als/arrays.npz")
    rewrite_manifest(bundle, files=digest_files(bundle))  # even with matching digests: one line
    refused(bundle, "cannot be loaded")


@pytest.mark.parametrize("path", ["../../etc", "/etc", "models/../../outside", "models\\..\\x"])
def test_manifest_paths_outside_the_bundle_are_refused(bundle, path):
    m = manifest(bundle)
    m["models"][0]["path"] = path
    rewrite_manifest(bundle, models=m["models"])
    refused(bundle, "outside the bundle")
    rewrite_manifest(bundle, files={**manifest(bundle)["files"], path: "0" * 64})
    refused(bundle, "outside the bundle")


def test_a_symlink_leading_out_is_refused(bundle, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(bundle / "models" / "itemcf", outside)
    shutil.rmtree(bundle / "models" / "itemcf")
    (bundle / "models" / "itemcf").symlink_to(outside)
    refused(bundle, "leads outside the bundle")


def test_added_and_missing_files_are_refused(bundle):
    (bundle / "models" / "itemcf" / "extra.npz").write_bytes(b"x")
    refused(bundle, "models/itemcf/extra.npz is not part of the bundle")
    (bundle / "models" / "itemcf" / "extra.npz").unlink()
    (bundle / "models" / "als" / "model.json").unlink()
    refused(bundle, "models/als/model.json is missing")


def test_a_bundle_without_digests_is_refused(bundle):
    m = manifest(bundle)
    del m["files"]
    (bundle / "manifest.json").write_text(json.dumps(m))
    refused(bundle, "records no file digests")


@pytest.mark.parametrize(("model", "change", "needle"), [
    ("als", lambda a: a.update({"item_factors": a["item_factors"][:-1]}), "the snapshot has 200 items"),
    ("als", lambda a: a.update({"user_factors": np.full_like(a["user_factors"], np.nan)}), "NaN"),
    ("itemcf", lambda a: a.update({"sim.indices": a["sim.indices"] + 10_000}), "column index lies outside"),
    ("itemcf", lambda a: a.update({"sim.shape": np.array([5, 5])}), "is 5x5; the snapshot has 200 items"),
    ("social", lambda a: a.pop("taste.data"), "array taste is missing"),
    ("social", lambda a: a.update({"smuggled": np.zeros(3)}), "array smuggled is not one this model saves"),
])
def test_arrays_that_do_not_fit_the_snapshot_are_refused_even_with_fresh_digests(bundle, model, change, needle):
    """Digests recomputed after the change (what a careless rewrite or a buggy model would leave):
    the arrays themselves are still checked against the snapshot."""
    edit_npz(bundle / "models" / model / "arrays.npz", change)
    rewrite_manifest(bundle, files=digest_files(bundle))
    refused(bundle, needle)


def test_kgrec_recommend_refuses_a_tampered_bundle_in_one_line(bundle, tmp_path):
    edit_npz(bundle / "models" / "itemcf" / "arrays.npz", lambda a: a.update({"sim.data": a["sim.data"][::-1].copy()}))
    users = tmp_path / "users.txt"
    users.write_text("u0001\n")
    result = CliRunner().invoke(main, ["recommend", "--bundle", str(bundle), "--users", str(users),
                                       "--output", str(tmp_path / "r.csv")])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) <= 3 and "SHA-256" in result.output
    assert not (tmp_path / "r.csv").exists()


def test_kgrec_serve_refuses_to_start_on_a_tampered_bundle(bundle, tmp_path):
    rewrite_manifest(bundle, files={**manifest(bundle)["files"], "snapshot/snapshot.npz": "0" * 64})
    result = CliRunner().invoke(main, ["serve", "--bundle", str(bundle), "--store", f"memory://{tmp_path}/s"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "KGREC_BUNDLE" in lines[0] and "snapshot/snapshot.npz" in lines[0]
