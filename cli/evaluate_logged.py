"""``kgrec evaluate --logged``: how each model of a bundle would have done on the logged impressions.

Reads the impressions in the store (``graph.impressions``), asks each target — a bundle model under
a serving policy — what it would have shown in each logged request's state, and prints replay,
IPS, SNIPS, doubly-robust and direct-method estimates of its reward per request with 95 %
intervals (cluster-robust by user), the effective sample size and the target's coverage by the
logging policy (``recommenders.serving.logged_evaluation``). A row is marked ``?`` when coverage
is under 0.95 or the ESS under 10,000: read its interval, not its point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def run_logged(store_url: str, bundle_dir: Path | None, models: str | None, policies: str, since: float | None,
               until: float | None, json_path: Path | None, markdown_path: Path | None, samples: int) -> None:
    from kgrec.graph.impressions import as_impression_store
    from kgrec.graph.store_errors import StoreError
    from kgrec.graph.store_factory import open_store
    from kgrec.recommenders.serving.logged_evaluation import Target, evaluate_logged
    from kgrec.recommenders.serving.policies import POLICIES
    from kgrec.recommenders.serving.server_loading import BundleLoadError, load_server

    if bundle_dir is None:
        raise click.UsageError("--logged needs --bundle: the models whose value on the logged traffic is estimated")
    try:
        server = load_server(bundle_dir)
    except BundleLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    names = [m.strip() for m in (models or ",".join(server.chain)).split(",") if m.strip()]
    unknown = [m for m in names if m not in server.models]
    if unknown:
        raise click.BadParameter(f"not in the bundle: {', '.join(unknown)} (it has {', '.join(sorted(server.models))})",
                                 param_hint="--models")
    chosen = [p.strip() for p in policies.split(",") if p.strip()]
    bad = [p for p in chosen if p not in POLICIES]
    if bad or not chosen:
        raise click.BadParameter(f"expected policies among {', '.join(POLICIES)}, got {policies!r}",
                                 param_hint="--target-policy")
    try:
        with open_store(store_url, existing=True) as store:
            logged = as_impression_store(store).logged_impressions(since, until)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if not logged:
        raise click.ClickException(f"no impressions logged in {store_url}"
                                   + (" in that time window" if since is not None or until is not None else ""))
    targets = [Target(m, p) for m in names for p in chosen]
    click.echo(f"{len(logged):,} impressions; estimating {len(targets)} target(s)", err=True)
    report = evaluate_logged(server, logged, targets, samples=samples)
    rows = _rows(report)
    click.echo(_table(report, rows))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(_json(report, rows), indent=2), encoding="utf-8")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(_table(report, rows, markdown=True) + "\n", encoding="utf-8")


def _rows(report: Any) -> list[dict[str, Any]]:
    out = []
    for t in report.targets:
        row: dict[str, Any] = {"target": t.target.name, "requests": t.n, "coverage": t.coverage, "ess": t.ess,
                               "trusted": t.trusted}
        for e in t.estimates:
            row[e.name] = {"value": e.value, "lo": e.lo, "hi": e.hi}
        out.append(row)
    return out


def _json(report: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"requests": report.requests, "impressions": report.impressions, "users": report.users,
            "logged": {"value": report.logged_value, "lo": report.logged_lo, "hi": report.logged_hi},
            "per": "reward per request", "targets": rows}


def _table(report: Any, rows: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["target", "replay", "IPS [95% CI]", "SNIPS [95% CI]", "DR [95% CI]", "DM", "ESS", "coverage", ""]

    def ci(e: dict[str, float]) -> str:
        return f"{e['value']:.4f} [{e['lo']:.4f}, {e['hi']:.4f}]"

    body = [[r["target"], f"{r['replay']['value']:.4f}", ci(r["IPS"]), ci(r["SNIPS"]), ci(r["DR"]),
             f"{r['DM']['value']:.4f}", f"{r['ess']:,.0f}", f"{r['coverage']:.3f}", "" if r["trusted"] else "?"]
            for r in rows]
    title = (f"{report.requests:,} logged requests, {report.impressions:,} impressions, {report.users:,} users; "
             f"logged reward per request {report.logged_value:.4f} "
             f"[{report.logged_lo:.4f}, {report.logged_hi:.4f}]")
    note = "? = coverage < 0.95 or ESS < 10,000: trust the interval, not the point"
    if markdown:
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join([*lines, "", note])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([title, fmt.format(*head), *(fmt.format(*r) for r in body), note])
