"""Run a snippet in a fresh interpreter where ``import torch`` fails: what serving processes
must survive (saved models score with numpy alone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREAMBLE = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
try:
    import torch  # noqa: F401
    raise SystemExit("torch was importable")
except ImportError:
    pass
"""


def run_without_torch(code: str) -> str:
    """Run ``code`` (dedented) after blocking torch; fail with its stderr, else return its stdout."""
    out = subprocess.run([sys.executable, "-c", PREAMBLE + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout
