"""What ``kgrec train`` does between reading the graph and writing the bundle: tune, then fit.

One function, so that the CLI and the quality benchmark run the same code path:

1. *Tune* (unless ``tune=False``): every named recommender with a search space — and, when a
   hybrid is named, each of its components — is tuned on the shared validation cut within
   the budget (``recommenders.tuning``). Options the user set (``--set``) are fixed during
   tuning and win over the choice.
2. *Fit* every named recommender on the whole snapshot with its chosen options; the hybrid
   is given its components' chosen options and takes the models already fitted on the
   snapshot and on the cut instead of fitting them again (``recommenders.bundle.fit_models``).

The result carries the manifest fields: ``tuning`` and, with a hybrid, what it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graph.snapshot import GraphSnapshot
from recommenders.base import Recommender
from recommenders.bundle import fit_models
from recommenders.hybrid import Hybrid, HybridConfig
from recommenders.tuning import CLOCK_GUARD, DEFAULT_BUDGET_S, TuningResult, tunable, tune


@dataclass
class Trained:
    models: dict[str, Recommender]
    tuning: TuningResult | None
    manifest: dict[str, Any] = field(default_factory=dict)


def train_models(snapshot: GraphSnapshot, names: Sequence[str], *, seed: int = 42,
                 settings: Mapping[str, Mapping[str, Any]] | None = None, tune_models: bool = True,
                 budget_s: float = DEFAULT_BUDGET_S, tune_kge: bool = False, guard: float = CLOCK_GUARD,
                 progress: Callable[[str], None] | None = None,
                 fitted_progress: Callable[[str, float], None] | None = None) -> Trained:
    """Tune (see the module docstring), then fit ``names`` on ``snapshot``."""
    settings = {n: dict(v) for n, v in (settings or {}).items()}
    hybrid_settings = settings.get(Hybrid.name, {})
    components = tuple(hybrid_settings.get("components", HybridConfig().components)) if Hybrid.name in names else ()
    result = None
    configs = {n: dict(v) for n, v in settings.items()}
    to_tune = [n for n in dict.fromkeys([*names, *components]) if n != Hybrid.name and tunable(n, tune_kge)]
    if tune_models and to_tune:  # nothing tunable (kge alone without --tune-kge): no validation cut
        result = tune(snapshot, to_tune, seed=seed, budget_s=budget_s, fixed=settings, tune_kge=tune_kge,
                      guard=guard, progress=progress)
        for name, chosen in result.configs().items():
            configs[name] = {**chosen, **settings.get(name, {})}
    if components and "component_configs" not in hybrid_settings:
        configs.setdefault(Hybrid.name, {})["component_configs"] = {
            c: configs[c] for c in components if configs.get(c)}
    models = fit_models(snapshot, names, seed=seed, configs=configs, progress=fitted_progress,
                        cut_fitted=result.fitted if result else None)
    manifest: dict[str, Any] = {"tuning": result.to_json() if result else {"tuned": False}}
    hybrid = models.get(Hybrid.name)
    if isinstance(hybrid, Hybrid) and hybrid.selection is not None:
        manifest["hybrid"] = hybrid.selection.to_json()
    return Trained(models, result, manifest)
