"""``kgrec serve``: the API under gunicorn (or Flask's development server with ``--dev``).

The bundle is loaded once in the gunicorn master (``preload_app``), so workers share its
arrays copy-on-write; each worker opens its own store connection lazily after the fork.
Metrics of all workers meet in one folder (prometheus-client's multiprocess mode, set up here
before the client is first imported); each request writes one JSON access-log line to stdout.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import sys
import tempfile
import threading
from typing import Any

import click

from kgrec.cli.options import store_option
from kgrec.graph.values import MAX_URL


@click.command()
@click.option("--bundle", "bundle", envvar="KGREC_BUNDLE", required=True,
              type=click.Path(exists=True, file_okay=False), help="A bundle directory written by `kgrec train`.")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256), help="Threads per worker.")
@click.option("--model", "default_model", envvar="KGREC_DEFAULT_MODEL", default=None,
              help="Default model (KGREC_DEFAULT_MODEL); the bundle's first otherwise.")
@click.option("--dev", is_flag=True, help="Flask's development server (one process, reloader off).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One JSON line per request on stdout (request id, endpoint, status, ms, model).")
def serve(bundle: str, store_url: str, host: str, port: int, workers: int, threads: int,
          default_model: str | None, dev: bool, access_log: bool) -> None:
    """Serve the JSON API, /metrics and the explanation pages. Writes need KGREC_API_KEY."""
    if not dev:
        _metrics_folder()
    _access_log(access_log)
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(bundle=bundle, store=store_url, default_model=default_model)
        app = create_app(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kgrec: serving {bundle} on http://{host}:{port} (store {store_url})", err=True)
    if dev:
        app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)
        return
    handle = app.extensions["kgrec.store"]
    gc.freeze()  # the preloaded bundle is shared by the forked workers: keep the collector off it

    def open_store_early(_worker: Any) -> None:
        """Open the store in the background as each worker starts, so no request pays for it."""
        threading.Thread(target=handle.reachable, name="kgrec-store-open", daemon=True).start()

    def forget_worker(_server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    run_gunicorn(app, {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                       "post_worker_init": open_store_early, "child_exit": forget_worker,
                       "worker_exit": lambda _server, _worker: handle.close()})


def _metrics_folder() -> None:
    """A fresh folder for the workers' metric files, unless the operator chose one (then it is
    theirs to empty between runs, as prometheus-client asks); removed when the server stops."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="kgrec-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))


def _access_log(enabled: bool) -> None:
    log = logging.getLogger("kgrec.access")
    log.propagate = False
    if enabled and not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


#: gunicorn worker classes by "threaded": gunicorn's own, answering refused requests in JSON.
WORKERS = {True: "kgrec.api.gunicorn_worker.ThreadWorker", False: "kgrec.api.gunicorn_worker.SyncWorker"}


def run_gunicorn(app: Any, options: dict[str, Any]) -> None:
    """Run a WSGI app in gunicorn, configured from a dict rather than a config file."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "preload_app": True,
                "worker_class": WORKERS[options.get("threads", 1) > 1],
                "limit_request_line": MAX_URL,
                "accesslog": None, "errorlog": "-", "timeout": 60, "graceful_timeout": 10, "keepalive": 5,
                **options,
            }
            for key, value in settings.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    _Server().run()
