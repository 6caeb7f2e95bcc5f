"""Operations: Prometheus metrics, request ids and one structured access-log line per request.

Under gunicorn every worker is its own process, so metrics use prometheus-client's multiprocess
mode: ``kgrec serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before anything
imports the client, each worker writes its samples there, and ``GET /metrics`` (from any worker)
adds them up. Without that variable (tests, ``--dev``) the app keeps its own registry. Metrics are
created per app and never registered in the client's global registry, so building several apps
in one process (the test suite) is fine.

**Bounded series.** Every label takes its value from a set fixed when the app is built, whatever
clients send: ``method`` one of ``METHODS`` (any other method is ``other``), ``endpoint`` one of
the app's routes or ``unmatched``, ``status`` the code the app answered (100-599), ``model`` and
``source`` a model of the loaded bundle or empty (anything else ``other``), ``operation`` read or
write. Every endpoint's latency histogram exists from startup, so the exposition has its full
shape from the first scrape. With E endpoints (the app's routes plus ``unmatched``: 22 today), M
models (the bundle's, plus empty and ``other``) and S statuses the app answers with (about 15), the
sample lines are at most ``E * 17`` (histograms: 14 buckets, +Inf, sum and count) ``+ E * 8 * S *
M`` (requests, of which a client reaches only the combinations the code serves) ``+ E * M``
(items) ``+ 2`` (store errors) ``+ 4`` (impression outcomes), whatever clients send.
``tests/test_serve_http.py`` sends random methods, paths and models to a real ``kgrec serve`` and
finds no value of theirs in a label and only the few combinations it newly served
(``benchmarks/slow_clients.py``: 300 requests add 3).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

access_log = logging.getLogger("kgrec.access")

#: Request ids a client may send: short and printable, so they are safe in logs and headers.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets (seconds): the API answers in milliseconds, a slow explanation in tenths.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Methods counted by name; any other is counted as ``OTHER``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER, UNMATCHED = "other", "unmatched"
#: The outcomes of ``kgrec_impressions_total`` (``recommenders.serving.impression_log.COUNTED``).
IMPRESSION_OUTCOMES = ("logged", "dropped", "failed")


class Metrics:
    """The app's counters and histograms, and how to expose them."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._registry = None if self.multiprocess else CollectorRegistry()
        reg = self._registry
        self.requests = Counter("kgrec_requests", "HTTP requests by endpoint, method, status and model",
                                ["endpoint", "method", "status", "model"], registry=reg)
        self.latency = Histogram("kgrec_request_seconds", "Time to answer a request, by endpoint",
                                 ["endpoint"], buckets=BUCKETS, registry=reg)
        self.items = Counter("kgrec_items_served", "Items served (recommended or similar), by the source that "
                             "produced them: a fallback serving often shows here", ["endpoint", "source"], registry=reg)
        self.store_errors = Counter("kgrec_store_errors", "Store calls that failed (the store was unreachable or "
                                    "refused), by operation", ["operation"], registry=reg)
        self.impressions = Counter("kgrec_impressions", "Impressions of served lists by outcome: logged (in the "
                                   "store), dropped (the worker's buffer was full), failed (the store refused "
                                   "them); dropped and failed are lost", ["outcome"], registry=reg)
        self.endpoints: frozenset[str] = frozenset({UNMATCHED})
        self.models: frozenset[str] = frozenset({""})

    def prepare(self, app: Flask, models: Iterable[str]) -> None:
        """Fix the label sets (the app's routes, the bundle's models) and create every endpoint's
        latency histogram now: in ``kgrec serve``'s master, before the workers fork."""
        self.endpoints = frozenset(rule.rule for rule in app.url_map.iter_rules()) | {UNMATCHED}
        self.models = frozenset(models) | {""}
        for endpoint in sorted(self.endpoints):
            self.latency.labels(endpoint)

    def endpoint(self, rule: str) -> str:
        return rule if rule in self.endpoints else OTHER

    def model(self, name: str) -> str:
        return name if name in self.models else OTHER

    @staticmethod
    def method(name: str) -> str:
        return name if name in METHODS else OTHER

    @staticmethod
    def status(code: int) -> str:
        return str(code) if 100 <= code <= 599 else OTHER

    def exposition(self) -> Response:
        if self._registry is not None:
            registry = self._registry
        else:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    def impression(self, outcome: str, n: int) -> None:
        """Count ``n`` impressions by outcome (``recommenders.serving.impression_log``; it counts 0 of
        each when its writer starts in a worker, so every outcome shows from the first list logged)."""
        self.impressions.labels(outcome if outcome in IMPRESSION_OUTCOMES else OTHER).inc(n)

    def store_error(self, operation: str) -> None:
        self.store_errors.labels(operation=operation if operation in ("read", "write") else OTHER).inc()


def install(app: Flask) -> Metrics:
    """Request ids, timing, counting and the access log for every request; ``GET /metrics``."""
    metrics = Metrics()
    app.extensions["kgrec.metrics"] = metrics

    @app.before_request
    def _start() -> None:
        g.kgrec_started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def _finish(resp: Response) -> Response:
        rid = g.get("request_id") or uuid.uuid4().hex
        resp.headers["X-Request-ID"] = rid
        elapsed = time.perf_counter() - g.get("kgrec_started", time.perf_counter())
        endpoint = metrics.endpoint(request.url_rule.rule if request.url_rule is not None else UNMATCHED)
        model = g.get("kgrec_model") or ""
        metrics.requests.labels(endpoint, metrics.method(request.method), metrics.status(resp.status_code),
                                metrics.model(model)).inc()
        metrics.latency.labels(endpoint).observe(elapsed)
        for source in g.get("kgrec_sources") or ():
            metrics.items.labels(endpoint, metrics.model(source)).inc()
        access_log.info(json.dumps(_access(rid, resp.status_code, elapsed, endpoint, model), ensure_ascii=False))
        return resp

    @app.get("/metrics")
    def _metrics() -> Response:
        return metrics.exposition()

    return metrics


def _access(rid: str, status: int, elapsed: float, endpoint: str, model: str) -> dict[str, Any]:
    return {"ts": round(time.time(), 3), "request_id": rid, "method": request.method, "path": request.path,
            "endpoint": endpoint, "status": status, "ms": round(elapsed * 1000, 2), "model": model or None,
            "remote": request.remote_addr, "bytes": request.content_length or 0}
