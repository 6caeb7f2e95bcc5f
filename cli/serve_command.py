"""``kgrec serve``: the API under gunicorn (or Flask's development server with ``--dev``).

The bundle is loaded once in the gunicorn master (``preload_app``), so workers share its
arrays copy-on-write; each worker opens its own store connection lazily after the fork.
Metrics of all workers meet in one folder (prometheus-client's multiprocess mode, set up here
before the client is first imported); each request writes one JSON access-log line to stdout.

Worker class ``asgi`` (the default, ``api.gunicorn_asgi``): gunicorn's asyncio worker reads
every request whole on its event loop (head deadline ``KGREC_HEAD_TIMEOUT``, body deadline
``KGREC_BODY_TIMEOUT``, at most ``--max-connections`` connections per worker), then runs Flask
in one of ``--threads`` threads; slow clients hold no thread. ``gthread`` is gunicorn's threaded
worker as before (a thread per connection: a few half-sent requests block it), kept as a fallback.
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
from collections.abc import Callable
from typing import Any

import click

from kgrec.cli.options import store_option
from kgrec.graph.values import MAX_URL


@click.command()
@click.option("--bundle", "bundle", envvar="KGREC_BUNDLE", required=True,
              type=click.Path(exists=True, file_okay=False), help="A bundle directory written by `kgrec train`.")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind, or unix:PATH for a unix socket behind a proxy (deploy/nginx/kgrec.conf).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Threads per worker that run requests (each request is read whole before it takes one).")
@click.option("--worker-class", "worker_class", type=click.Choice(["asgi", "gthread"]), default="asgi",
              show_default=True, help="asgi: requests are read on an event loop, slow clients hold no thread; "
              "gthread: gunicorn's threaded worker (a thread per connection), a fallback.")
@click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Open connections per worker (asgi); past it the worker stops accepting until some close.")
@click.option("--model", "default_model", envvar="KGREC_DEFAULT_MODEL", default=None,
              help="Default model (KGREC_DEFAULT_MODEL); the bundle's first otherwise.")
@click.option("--dev", is_flag=True, help="Flask's development server (one process, reloader off).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One JSON line per request on stdout (request id, endpoint, status, ms, model).")
def serve(bundle: str, store_url: str, host: str, port: int, workers: int, threads: int, worker_class: str,
          max_connections: int, default_model: str | None, dev: bool, access_log: bool) -> None:
    """Serve the JSON API, /metrics and the explanation pages. Writes need KGREC_API_KEY."""
    undo_metrics = _metrics_folder() if not dev else None
    _access_log(access_log)
    from kgrec.api.app import create_app
    from kgrec.api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(bundle=bundle, store=store_url, default_model=default_model)
        app = create_app(settings)
    except BaseException as exc:  # nothing served: leave the process's environment as it was
        if undo_metrics is not None:
            undo_metrics()
        if isinstance(exc, SettingsError):
            raise click.ClickException(str(exc)) from exc
        raise
    seal = app.extensions["kgrec.server"].seal
    click.echo(f"kgrec: serving {bundle} on http://{host}:{port} (store {store_url}; bundle "
               f"{seal.describe() if seal else 'not from a bundle directory'})", err=True)
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

    bind = host if host.startswith("unix:") else f"{host}:{port}"
    options: dict[str, Any] = {"bind": bind, "workers": workers, "threads": threads,
                               "post_worker_init": open_store_early, "child_exit": forget_worker,
                               "worker_exit": lambda _server, _worker: handle.close()}
    target: Any = app
    if worker_class == "asgi":
        from kgrec.api import gunicorn_asgi

        gunicorn_asgi.JsonASGIProtocol.head_timeout = settings.head_timeout
        target = gunicorn_asgi.wsgi_to_asgi(app, threads, settings.max_body, settings.body_timeout)
        # threads run requests in a2wsgi's pool, not in gunicorn: it takes connections instead.
        options.update(worker_class=ASGI_WORKER, threads=1, worker_connections=max_connections,
                       asgi_lifespan="off", http_parser="python")
    run_gunicorn(target, options)


def _metrics_folder() -> Callable[[], None] | None:
    """A fresh folder for the workers' metric files, unless the operator chose one (then it is
    theirs to empty between runs, as prometheus-client asks); removed when the server stops.
    Returns what undoes it (the variable and the folder) for a server that never starts."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    folder = tempfile.mkdtemp(prefix="kgrec-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked worker
            shutil.rmtree(folder, ignore_errors=True)

    def undo() -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == folder:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        atexit.unregister(remove)
        remove()

    atexit.register(remove)
    return undo


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
#: The default: gunicorn's asyncio worker in front of the app's thread pool (``api.gunicorn_asgi``).
#: ``http_parser="python"``: its line-bound fix (``StrictLines``) patches gunicorn's Python parser.
ASGI_WORKER = "kgrec.api.gunicorn_asgi.JsonASGIWorker"


def run_gunicorn(app: Any, options: dict[str, Any]) -> None:
    """Run an app (WSGI, or ASGI for the asgi worker) in gunicorn, configured from a dict rather
    than a config file."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "preload_app": True,
                "worker_class": WORKERS[options.get("threads", 1) > 1],
                "limit_request_line": MAX_URL,
                "accesslog": None, "errorlog": "-", "timeout": 60, "graceful_timeout": 10, "keepalive": 5,
                # gunicorn's control socket ($HOME/.gunicorn/gunicorn.ctl, one path for every server
                # of the user) manages workers; kgrec does not use it, so it is not opened.
                "control_socket_disable": True,
                **options,
            }
            for key, value in settings.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    _Server().run()
