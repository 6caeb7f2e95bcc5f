"""``kgrec load`` and ``kgrec demo`` end to end on the embedded store, and verified downloads
from a local ``file://`` zip (the network is never used)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.store_factory import open_store
from kgrec.loaders.download import DownloadError, fetch
from tests.test_loaders_datasets import make_ml100k
from tests.test_loaders_validation import make_csv_dir


def _kgrec(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def _counts(store_dir: Path) -> dict[str, int]:
    with open_store(f"memory://{store_dir}") as store:
        return store.counts()


def test_load_csv_keeps_good_rows_and_writes_the_reject_report(tmp_path: Path) -> None:
    data, store = make_csv_dir(tmp_path / "csv", bad=True), tmp_path / "g"
    code, out, err = _kgrec("load", "csv", "--path", str(data), "--store", f"memory://{store}", "--no-progress")
    assert code == 0, err
    assert "2 rows rejected: weight is not a finite number > 0 (weight)" in err
    assert "1 rows rejected: a user follows themself (self_loop)" in err
    report = store / "rejects-csv-csv.csv"
    assert f"reject report: {report}" in err
    lines = report.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file,line,reason,detail" and len(lines) == 1 + 5
    assert "interactions.csv,5,weight," in "\n".join(lines)
    counts = _counts(store)
    assert counts["interactions"] == 4 and counts["follows"] == 3 and counts["taggings"] == 1
    assert "interactions" in out and "in store" in out


def test_strict_load_with_rejects_writes_nothing(tmp_path: Path) -> None:
    data, store, rejects = make_csv_dir(tmp_path / "csv", bad=True), tmp_path / "g", tmp_path / "r.csv"
    code, _, err = _kgrec("load", "csv", "--path", str(data), "--store", f"memory://{store}", "--strict",
                          "--rejects", str(rejects))
    assert code == 1
    assert "--strict: 5 rows rejected; nothing was written" in err
    assert rejects.is_file()
    assert not store.exists() or sum(_counts(store).values()) == 0
    good = make_csv_dir(tmp_path / "good")
    code, _, err = _kgrec("load", "csv", "--path", str(good), "--store", f"memory://{store}", "--strict",
                          "--symmetric")
    assert code == 0, err
    assert _counts(store)["follows"] == 4


@pytest.mark.parametrize(
    "args",
    [
        ["load", "csv"],
        ["load", "csv", "--path", "/no/such/folder"],
        ["load", "synthetic", "--users", "1"],
        ["load", "movielens", "--variant", "10m"],
        ["load", "lastfm-2k", "--sha256", "ab"],
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str]) -> None:
    code, _, err = _kgrec(*args, "--store", f"memory://{tmp_path / 'g'}")
    assert code == 2
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_movielens_variant_must_match_the_folder(tmp_path: Path) -> None:
    folder = make_ml100k(tmp_path / "ml")
    code, _, err = _kgrec("load", "movielens", "--path", str(folder), "--variant", "1m",
                          "--store", f"memory://{tmp_path / 'g'}")
    assert code == 2 and "is MovieLens 100k, not 1m" in err


def test_load_synthetic_and_rerun_is_idempotent(tmp_path: Path) -> None:
    store = f"memory://{tmp_path / 'g'}"
    args = ("load", "synthetic", "--users", "30", "--items", "40", "--seed", "3", "--store", store, "--no-progress")
    assert _kgrec(*args)[0] == 0
    first = _counts(tmp_path / "g")
    assert first["users"] == 30 and first["items"] == 40
    assert _kgrec(*args)[0] == 0
    assert _counts(tmp_path / "g") == first


def test_replace_empties_the_store_first(tmp_path: Path) -> None:
    store = f"memory://{tmp_path / 'g'}"
    assert _kgrec("load", "synthetic", "--users", "30", "--items", "40", "--store", store, "--no-progress")[0] == 0
    data = make_csv_dir(tmp_path / "csv")
    assert _kgrec("load", "csv", "--path", str(data), "--store", store, "--replace", "--no-progress")[0] == 0
    counts = _counts(tmp_path / "g")
    assert counts["users"] == 3 and counts["items"] == 3 and counts["interactions"] == 4


def test_demo_builds_and_describes_the_graph(tmp_path: Path) -> None:
    code, out, err = _kgrec("demo", "--users", "60", "--items", "80", "--store", f"memory://{tmp_path / 'g'}",
                            "--out", str(tmp_path / "bundle"))
    assert code == 0, err
    assert "users" in out and "community" in out and "top tags" in out
    assert _counts(tmp_path / "g")["users"] == 60
    assert (tmp_path / "bundle" / "manifest.json").is_file()
    assert f"kgrec recommend --bundle {tmp_path / 'bundle'}" in out


def test_stats_on_a_missing_memory_store_exits_1_in_one_line(tmp_path: Path) -> None:
    code, out, err = _kgrec("stats", "--store", f"memory://{tmp_path / 'typo'}")
    assert code == 1 and out == ""
    assert err.strip() == f"Error: no memory store at {tmp_path / 'typo'} (nothing was loaded there; see `kgrec load`)"
    assert not (tmp_path / "typo").exists()


# -- downloads ----------------------------------------------------------------------------------


def _zip(tmp_path: Path, members: dict[str, bytes]) -> tuple[str, str]:
    path = tmp_path / "dataset.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest()


def _ml100k_members(tmp_path: Path) -> dict[str, bytes]:
    folder = make_ml100k(tmp_path / "src")
    return {f"ml-100k/{p.name}": p.read_bytes() for p in folder.iterdir()}


def test_download_verifies_and_caches(tmp_path: Path) -> None:
    url, sha = _zip(tmp_path, _ml100k_members(tmp_path))
    cache = tmp_path / "cache"
    folder = fetch("movielens-100k", url=url, sha256=sha, cache=cache, progress=False)
    assert (folder / "u.data").is_file() and folder.parent == cache / "movielens-100k"
    Path(url.removeprefix("file://")).unlink()  # the second call must not download again
    assert fetch("movielens-100k", url=url, sha256=sha, cache=cache, progress=False) == folder
    stamp = json.loads((cache / "movielens-100k" / ".kgrec-source.json").read_text())
    assert stamp["digest"] == sha


def test_download_with_a_wrong_digest_caches_nothing(tmp_path: Path) -> None:
    url, _ = _zip(tmp_path, _ml100k_members(tmp_path))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch("movielens-100k", url=url, sha256="0" * 64, cache=cache, progress=False)
    assert not (cache / "movielens-100k").exists()
    assert [p.name for p in cache.iterdir()] == []


@pytest.mark.parametrize("bad_name", ["../evil.txt", "/abs/evil.txt", "ml/../../evil.txt"])
def test_download_refuses_path_traversal(tmp_path: Path, bad_name: str) -> None:
    members = _ml100k_members(tmp_path)
    members[bad_name] = b"x"
    url, sha = _zip(tmp_path, members)
    with pytest.raises(DownloadError, match="unsafe path"):
        fetch("movielens-100k", url=url, sha256=sha, cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "cache" / "movielens-100k").exists()


def test_download_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot download"):
        fetch("lastfm-2k", url=(tmp_path / "missing.zip").as_uri(), cache=tmp_path / "c", progress=False)
    with pytest.raises(DownloadError, match="unknown dataset"):
        fetch("netflix", cache=tmp_path / "c")
    url, sha = _zip(tmp_path, {"readme.txt": b"no data here"})
    with pytest.raises(DownloadError, match=r"has no user_artists\.dat"):
        fetch("lastfm-2k", url=url, sha256=sha, cache=tmp_path / "c", progress=False)


def test_cli_load_without_path_downloads_into_the_cache(tmp_path: Path) -> None:
    url, sha = _zip(tmp_path, _ml100k_members(tmp_path))
    env = {"KGREC_CACHE": str(tmp_path / "cache")}
    code, _, err = _kgrec("load", "movielens", "--variant", "100k", "--url", url, "--sha256", sha,
                          "--store", f"memory://{tmp_path / 'g'}", "--no-progress", env=env)
    assert code == 0, err
    assert (tmp_path / "cache" / "movielens-100k" / "ml-100k" / "u.data").is_file()
    assert _counts(tmp_path / "g")["interactions"] == 3
    code, _, err = _kgrec("load", "movielens", "--variant", "100k", "--url", url, "--sha256", "f" * 64,
                          "--store", f"memory://{tmp_path / 'g2'}", env={"KGREC_CACHE": str(tmp_path / "c2")})
    assert code == 1 and "sha256 mismatch" in err
