"""What every wrk-driven serving benchmark shares: a paced script over a list of request paths,
and stopping the server it started."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

#: Requests cycle through a list of paths; each connection waits ``pause`` ms between requests.
PATHS_LUA = """
paths = {%s}
pause = %s
counter = 0
delay = function()
  return pause
end
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""


def paths_script(path: Path, paths: list[str], pause_ms: int) -> Path:
    """A wrk script at ``path`` that requests ``paths`` in turn, pausing ``pause_ms`` per connection."""
    path.write_text(PATHS_LUA % (",".join(json.dumps(p) for p in paths), pause_ms), encoding="utf-8")
    return path


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
