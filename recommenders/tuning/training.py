"""What ``kgrec train`` does between reading the graph and writing the bundle: tune, then fit.

One function, so that the CLI and the quality benchmark run the same code path:

1. *Tune* (unless ``tune=False``): every named recommender with a search space — and the
   members of a model built from others (the hybrid's components, ``Recommender.members``) —
   is tuned on the shared validation cut within the budget (``recommenders.tuning``). Options
   the user set (``--set``) are fixed during tuning and win over the choice.
2. *Fit* every named recommender on the whole snapshot with its chosen options; a composed
   model is given its members' chosen options (``Recommender.with_member_configs``) and takes
   the models already fitted on the snapshot and on the cut instead of fitting them again
   (``recommenders.bundle.fit_models``).

With ``warm`` (``kgrec train --warm-start``), the models that can start warm keep the old
bundle's options instead of being tuned and start from its fitted models
(``recommenders.models.warm_fit``).

The result carries the manifest fields: ``tuning``, ``warm_start``
(``recommenders.bundle.warm_source.warm_manifest``) and each model's ``manifest_entry`` (the
hybrid's: what it serves).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommender, WarmStart
from kgrec.recommenders.bundle.model_bundle import fit_models
from kgrec.recommenders.bundle.warm_source import old_configs, warm_manifest
from kgrec.recommenders.registry import get
from kgrec.recommenders.tuning.tuner import CLOCK_GUARD, DEFAULT_BUDGET_S, TuningResult, tunable, tune


@dataclass
class Trained:
    models: dict[str, Recommender]
    tuning: TuningResult | None
    manifest: dict[str, Any] = field(default_factory=dict)


def train_models(snapshot: GraphSnapshot, names: Sequence[str], *, seed: int = 42,
                 settings: Mapping[str, Mapping[str, Any]] | None = None, tune_models: bool = True,
                 budget_s: float = DEFAULT_BUDGET_S, tune_kge: bool = False, guard: float = CLOCK_GUARD,
                 progress: Callable[[str], None] | None = None,
                 fitted_progress: Callable[[str, float], None] | None = None,
                 warm: WarmStart | None = None) -> Trained:
    """Tune (see the module docstring), then fit ``names`` on ``snapshot``. With ``warm``
    (``--warm-start``), a model the old bundle has and that can start warm keeps the old
    bundle's options (``--set`` still wins) instead of being tuned, and starts from it."""
    settings = {n: dict(v) for n, v in (settings or {}).items()}
    old = old_configs(warm) if warm is not None else {}
    kept = {n: old[n] for n in names if n in old}
    settings.update({n: {**kept[n], **settings.get(n, {})} for n in kept})
    members = {n: tuple(m for m in get(n).members(get(n).Config.build(**settings.get(n, {})))
                        if get(m).applies_to(snapshot)) for n in names}  # as the hybrid leaves them out
    result = None
    configs = {n: dict(v) for n, v in settings.items()}
    every = dict.fromkeys([*names, *(m for ms in members.values() for m in ms)])
    to_tune = [n for n in every if not get(n).composes and tunable(n, tune_kge) and n not in kept]
    if tune_models and to_tune:  # nothing tunable (kge alone without --tune-kge): no validation cut
        result = tune(snapshot, to_tune, seed=seed, budget_s=budget_s, fixed=settings, tune_kge=tune_kge,
                      guard=guard, progress=progress)
        for name, chosen in result.configs().items():
            configs[name] = {**chosen, **settings.get(name, {})}
    for name, parts in members.items():
        if parts:
            chosen = {m: configs[m] for m in parts if configs.get(m)}
            configs[name] = get(name).with_member_configs(configs.get(name, {}), chosen)
    models = fit_models(snapshot, names, seed=seed, configs=configs, progress=fitted_progress,
                        cut_fitted=result.fitted if result else None, warm=warm)
    manifest: dict[str, Any] = {"tuning": result.to_json() if result else {"tuned": False}}
    if warm is not None:
        manifest["warm_start"] = warm_manifest(warm, models)
    for name, rec in models.items():
        entry = rec.manifest_entry()
        if entry is not None:
            manifest[name] = entry
    return Trained(models, result, manifest)
