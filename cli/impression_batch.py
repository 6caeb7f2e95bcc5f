"""``kgrec recommend --log-impressions``: serve a batch through the read path and log each list's
impressions in the store, as the API does (``recommenders.serving.impression_log``), in this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import click


def logged_batch(server: Any, query: Any, users: Sequence[str], state: Callable[[str], Any], store_url: str,
                 write: Callable[[str, list, bool], None], batch: int = 5_000) -> int:
    """Serve every user (``Server.decide``), write their impressions in batches of ``batch`` rows,
    and hand each list, with its impression ids, to ``write``; returns the impressions logged."""
    from kgrec.graph.impressions import as_impression_store
    from kgrec.graph.store_errors import StoreError
    from kgrec.graph.store_factory import open_store
    from kgrec.recommenders.serving.impression_log import impressions, new_request_id, seed_of

    pending: list[Any] = []
    logged = 0
    try:
        with open_store(store_url) as store:
            sink = as_impression_store(store)

            def flush() -> None:
                nonlocal logged
                with store.exclusive():
                    logged += sink.log_impressions(pending)
                pending.clear()

            for user in users:
                st = state(user)
                request = new_request_id()
                decision = server.decide(replace(query, user=user, seed=seed_of(request)), st)
                rows = impressions(decision, request, user, query.model or server.default_model)
                pending += rows
                served = [replace(s, impression_id=r.id) for s, r in zip(decision.served, rows, strict=True)]
                write(user, served, user in server.snapshot.users or st.known or bool(st.history))
                if len(pending) >= batch:
                    flush()
            if pending:
                flush()
    except StoreError as exc:
        raise click.ClickException(f"cannot log impressions in {store_url}: {exc}") from exc
    click.echo(f"logged {logged:,} impressions in {store_url}", err=True)
    return logged
