"""One import package: the wheel installs `kgrec` alone, with every code folder in it, and the
layer contract (pyproject.toml [tool.importlinter]) catches a lower layer importing a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = ("graph", "loaders", "embeddings", "recommenders", "api", "cli")
BIN = Path(sys.executable).parent


def _declared() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_code_folder_is_a_declared_package() -> None:
    on_disk = {"kgrec"} | {"kgrec." + ".".join(p.parent.relative_to(ROOT).parts)
                           for top in CODE for p in (ROOT / top).rglob("__init__.py")}
    assert set(_declared()) == on_disk


def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    src = _copy_package(tmp_path / "src")  # a build writes build/ and *.egg-info beside pyproject.toml
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("kgrec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"kgrec"}
    assert "kgrec/recommenders/models/itemcf.py" in names and "kgrec/cli/__init__.py" in names
    assert not [n for n in names if n.startswith(("kgrec/tests/", "kgrec/benchmarks/"))]
    shipped = {n for n in names if not n.endswith(".py") and ".dist-info/" not in n}
    data = {"kgrec/" + str(p.relative_to(ROOT)) for top in CODE for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix in (".html", ".css", ".js", ".cypher")}
    assert data and shipped == data, "templates, static files and Cypher cookbook must ship, nothing else"


def _copy_package(dest: Path) -> Path:
    pkg = dest / "kgrec"
    pkg.mkdir(parents=True)
    shutil.copy(ROOT / "__init__.py", pkg / "__init__.py")
    for top in CODE:
        shutil.copytree(ROOT / top, pkg / top, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def _lint_imports(path: Path) -> subprocess.CompletedProcess[str]:
    if not (BIN / "lint-imports").exists():
        pytest.skip("import-linter is not installed (make install)")
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                          cwd=path, env={**os.environ, "PYTHONPATH": str(path)}, capture_output=True, text=True,
                          timeout=120)


def test_the_layer_check_fails_when_a_lower_layer_imports_a_higher_one(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    kept = _lint_imports(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    schema = pkg / "graph" / "schema.py"
    schema.write_text(schema.read_text() + "\nfrom kgrec.recommenders import registry  # noqa: E402,F401\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "kgrec.graph.schema -> kgrec.recommenders.registry" in broken.stdout
