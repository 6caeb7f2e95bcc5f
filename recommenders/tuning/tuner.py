"""Choosing each recommender's hyper-parameters on the user's own graph, with optuna.

``kgrec train`` calls :func:`tune` before it fits anything for serving. For every named
recommender whose class defines ``search_space(trial, snapshot) -> dict`` (Config overrides;
``kge`` only when asked), one optuna study runs on the shared validation cut
(``recommenders.validation``): each trial fits the model on the cut's training part and
scores NDCG@10 on a seeded sample of the cut's users. The first trial is always the shipped
defaults (it suggests nothing, so TPE learns from the later trials only), so the choice is
never worse than the defaults on validation; a class may name good starting points
(``search_starts(snapshot) -> list[dict]`` of trial parameters), run next. Trials are proposed
by a seeded TPE sampler; a trial whose NDCG on the first 30 % of the users falls below the
median of earlier trials at that stage is pruned (``MedianPruner``) before the rest are scored.

**Same seed, same choice.** A time budget cannot decide how many trials run, because
wall-clock time differs between runs and machines. The budget is turned into a trial count
per model *before* any trial runs, from a cost model of the graph's size
(:func:`plan_trials`: seconds per trial on the reference machine, 2 CPU cores), so the trial
sequence, and with it every value, pruning decision and the choice, depends only on the data
and the seed. A wall-clock guard stops a study early only when tuning runs far past its
budget (a machine much slower than the reference); the manifest then says so
(``stopped_by_clock``), and only then can a rerun choose differently.

The result records the search space, every trial (parameters, state, validation NDCG@10,
seconds) and the chosen overrides; the models fitted on the cut with the chosen settings are
kept for the hybrid, which learns its ranker on the same cut.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Recommender, Tunable
from kgrec.recommenders.evaluation.splits import Split
from kgrec.recommenders.evaluation.validation_cut import UserSample, user_ndcg, validation_cut
from kgrec.recommenders.registry import create, get
from kgrec.recommenders.tuning.trial_cost import DEFAULT_BUDGET_S, trial_seconds

if TYPE_CHECKING:
    import optuna

#: Validation users scored per trial (a seeded sample of the cut's users).
MAX_USERS = 1000
#: Trials per model: at least the defaults, at most this many.
MAX_TRIALS = 40
#: The guard stops studies once tuning has taken this many times its budget, and at least
#: ``GUARD_SLACK_S`` seconds more than it.
CLOCK_GUARD = 2.0
GUARD_SLACK_S = 60.0
#: How sharply the budget favours the models whose defaults score best (see ``weights_from_defaults``).
WEIGHT_POWER = 4.0


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, Any]  # the Config overrides the trial fitted with ({} for trial 0: the defaults)
    state: str  # "complete", "pruned" or "failed"
    ndcg: float | None  # validation NDCG@10 on all sampled users (None when pruned or failed)
    first_stage: float | None  # on the first stage's users
    seconds: float


@dataclass
class ModelTuning:
    """One recommender's study: its space, trials and choice."""

    name: str
    planned: int
    space: dict[str, Any] = field(default_factory=dict)
    trials: list[TrialRecord] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)
    default_ndcg: float | None = None
    best_ndcg: float | None = None
    seconds: float = 0.0
    stopped_by_clock: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "trials": [asdict(t) for t in self.trials]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModelTuning:
        known = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in d.items() if k in known and k != "trials"})
        out.trials = [TrialRecord(**t) for t in d.get("trials", [])]
        return out


@dataclass
class TuningResult:
    """Every study of one ``tune`` call; ``cut`` and ``fitted`` are for the hybrid, not saved."""

    seed: int
    budget_s: float
    users: int
    models: dict[str, ModelTuning]
    seconds: float
    cut: Split | None = None
    fitted: dict[str, Recommender] = field(default_factory=dict)

    def configs(self) -> dict[str, dict[str, Any]]:
        """The chosen Config overrides per tuned recommender."""
        return {name: dict(m.chosen) for name, m in self.models.items() if m.chosen}

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "budget_s": self.budget_s, "validation_users": self.users,
                "seconds": round(self.seconds, 2), "models": {n: m.to_json() for n, m in self.models.items()}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TuningResult:
        return cls(seed=d["seed"], budget_s=d["budget_s"], users=d["validation_users"], seconds=d["seconds"],
                   models={n: ModelTuning.from_json(m) for n, m in d["models"].items()})


def tunable(name: str, tune_kge: bool = False) -> bool:
    """Whether ``name`` has a search space and is tuned by default (an ``expensive`` model, kge,
    only when asked)."""
    cls = get(name)
    return issubclass(cls, Tunable) and (tune_kge or not cls.expensive)


def plan_trials(snapshot: GraphSnapshot, names: Sequence[str], budget_s: float, users: int,
                weights: Mapping[str, float] | None = None) -> dict[str, int]:
    """Trials per model from the budget and the cost model alone (no clock). Every model runs
    its defaults; the rest of the budget is shared in proportion to ``weights`` (equal without
    them) times the square root of a trial's cost — so an expensive model gets more seconds
    but fewer trials than a cheap one of the same weight — and a model that needs less than
    its share (``MAX_TRIALS`` reached) hands the rest to the others."""
    cost = {n: trial_seconds(n, snapshot, users) for n in names}
    weight = {n: max(0.0, (weights or {}).get(n, 1.0)) * math.sqrt(cost[n]) for n in names}
    plan = {n: 1 for n in names}
    left, open_ = budget_s - sum(cost.values()), [n for n in names if weight[n] > 0]
    while open_ and left > 0:
        total = sum(weight[n] for n in open_)
        spent, still = 0.0, []
        for n in open_:
            extra = min(MAX_TRIALS - plan[n], math.floor(left * weight[n] / total / cost[n]))
            plan[n] += extra
            spent += extra * cost[n]
            if plan[n] < MAX_TRIALS and extra > 0:
                still.append(n)
        left -= spent
        if spent == 0:
            break
        open_ = still
    return plan


def weights_from_defaults(default_ndcg: Mapping[str, float | None]) -> dict[str, float]:
    """How much of the budget each model's search gets: ``(its defaults' NDCG / the best
    defaults' NDCG) ** WEIGHT_POWER``, so the strong components, which the hybrid leans on,
    are searched most and a model far behind is searched little."""
    best = max((v for v in default_ndcg.values() if v), default=0.0)
    return {n: (v / best) ** WEIGHT_POWER if v and best > 0 else 0.0 for n, v in default_ndcg.items()}


def tune(snapshot: GraphSnapshot, names: Sequence[str], *, seed: int = 42, budget_s: float = DEFAULT_BUDGET_S,
         fixed: Mapping[str, Mapping[str, Any]] | None = None, tune_kge: bool = False,
         max_users: int = MAX_USERS, cut: Split | None = None, guard: float = CLOCK_GUARD,
         progress: Callable[[str], None] | None = None) -> TuningResult:
    """Tune every tunable recommender of ``names`` on the validation cut (see the module doc).
    ``fixed`` holds options the user set (``--set``): they win over every trial's values;
    studies stop once tuning has taken ``guard`` times the budget (and a minute past it).

    First every model's defaults are scored (trial 0); then the budget left after them (by
    the cost model) is shared by ``weights_from_defaults`` and the searches run, the most
    promising first."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    deadline = started + max(guard * budget_s, budget_s + GUARD_SLACK_S)
    cut = cut if cut is not None else validation_cut(snapshot, seed)
    sample = UserSample.of(cut, seed, max_users)
    todo = [n for n in dict.fromkeys(names) if tunable(n, tune_kge)]
    studies = {n: _Study(n, cut, sample, seed, dict((fixed or {}).get(n, {}))) for n in todo}
    for study in studies.values():
        study.run(1, deadline)
    weights = weights_from_defaults({n: s.default_value for n, s in studies.items()})
    plan = plan_trials(cut.train, todo, budget_s, len(sample.users), weights)
    result = TuningResult(seed=seed, budget_s=budget_s, users=len(sample.users), models={}, seconds=0.0, cut=cut)
    for name in sorted(todo, key=lambda n: (-weights[n], todo.index(n))):
        study = studies[name]
        study.record.planned = plan[name]
        study.run(plan[name] - 1, deadline)
        result.models[name] = study.finish()
        if study.best is not None:
            result.fitted[name] = study.best
        if progress is not None:
            m = result.models[name]
            progress(f"tuned {name}: {len(m.trials)} trials, validation NDCG@10 "
                     f"{_fmt(m.default_ndcg)} -> {_fmt(m.best_ndcg)} ({m.seconds:.1f} s)")
    result.models = {n: result.models[n] for n in todo}
    result.seconds = time.perf_counter() - started
    return result


class _Study:
    """One recommender's optuna study; keeps the best model fitted on the cut."""

    def __init__(self, name: str, cut: Split, sample: UserSample, seed: int, fixed: dict[str, Any]) -> None:
        import optuna

        self.name, self.cut, self.sample, self.seed, self.fixed = name, cut, sample, seed, fixed
        cls = get(name)
        assert issubclass(cls, Tunable)  # tune() studies only the tunable models
        self.cls = cls
        sampler = optuna.samplers.TPESampler(seed=seed + zlib.crc32(name.encode()) % 10_000, n_startup_trials=5)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        self.study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        self.starts = self.cls.search_starts(cut.train)
        self.record = ModelTuning(name=name, planned=1)
        self.best: Recommender | None = None
        self.best_value = -1.0
        self.best_params: dict[str, Any] = {}

    @property
    def default_value(self) -> float | None:
        """Validation NDCG@10 of trial 0 (the defaults), None if it failed or did not run."""
        trials = self.study.trials
        return trials[0].value if trials and trials[0].value is not None else None

    def objective(self, trial: optuna.Trial) -> float:
        import optuna

        t0 = time.perf_counter()
        # trial 0 is the shipped defaults (with the user's settings), outside the search space
        overrides = {**(self.cls.search_space(trial, self.cut.train) if trial.number > 0 else {}), **self.fixed}
        trial.set_user_attr("overrides", _jsonable(overrides))
        model = create(self.name, **{**overrides, "seed": self.seed}).fit(self.cut.train)
        users = self.sample.users
        first = user_ndcg(model, self.cut, users[: self.sample.first])
        trial.set_user_attr("first_stage", float(first.mean()))
        trial.report(float(first.mean()), 0)
        if trial.number > 0 and trial.should_prune():
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            raise optuna.TrialPruned
        value = float(np.concatenate([first, user_ndcg(model, self.cut, users[self.sample.first :])]).mean())
        if value > self.best_value:
            self.best, self.best_value, self.best_params = model, value, overrides
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        return value

    def run(self, n_trials: int, deadline: float) -> None:
        def guard(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if time.perf_counter() > deadline:
                self.record.stopped_by_clock = True
                study.stop()

        if n_trials <= 0 or (self.study.trials and time.perf_counter() > deadline):
            self.record.stopped_by_clock |= n_trials > 0
            return
        if len(self.study.trials) == 1:  # the defaults ran: a class's known good points come next
            for start in self.starts:
                self.study.enqueue_trial(start)
        t0 = time.perf_counter()
        self.study.optimize(self.objective, n_trials=n_trials, callbacks=[guard],
                            catch=(ValueError, np.linalg.LinAlgError))
        self.record.seconds += time.perf_counter() - t0

    def finish(self) -> ModelTuning:
        import optuna

        out = self.record
        out.space = declared_space(self.name, self.cut.train, self.seed)
        out.trials = []
        for t in self.study.trials:
            state = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned"}.get(
                t.state, "failed")
            out.trials.append(TrialRecord(number=t.number, params=t.user_attrs.get("overrides", {}), state=state,
                                          ndcg=t.value if state == "complete" else None,
                                          first_stage=t.user_attrs.get("first_stage"),
                                          seconds=round(float(t.user_attrs.get("seconds", 0.0)), 3)))
        if out.trials and out.trials[0].state == "complete":
            out.default_ndcg = out.trials[0].ndcg
        if self.best is not None:
            out.best_ndcg = self.best_value
            out.chosen = _jsonable(self.best_params)
        return out


def declared_space(name: str, snapshot: GraphSnapshot, seed: int, probes: int = 16) -> dict[str, Any]:
    """Every parameter ``name``'s search space can suggest on ``snapshot`` (conditional ones
    included, found by asking it ``probes`` random trials; nothing is fitted), as optuna's
    JSON distributions."""
    import optuna

    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space: dict[str, Any] = {}
    cls = get(name)
    assert issubclass(cls, Tunable), f"{name} has no search space"
    for _ in range(probes):
        trial = probe.ask()
        cls.search_space(trial, snapshot)
        for pname, dist in trial.distributions.items():
            space.setdefault(pname, json.loads(optuna.distributions.distribution_to_json(dist)))
    return space


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON values (numpy scalars become Python numbers, tuples lists)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def table(result: TuningResult) -> str:
    """A short text table of the studies, for ``kgrec train``."""
    rows = [f"{'model':<12} {'trials':>6} {'pruned':>6} {'default':>8} {'chosen':>8} {'s':>6}  chosen settings"]
    for name, m in result.models.items():
        pruned = sum(t.state == "pruned" for t in m.trials)
        settings = ", ".join(f"{k}={_short(v)}" for k, v in m.chosen.items()) or "(defaults)"
        rows.append(f"{name:<12} {len(m.trials):>6} {pruned:>6} {_fmt(m.default_ndcg):>8} {_fmt(m.best_ndcg):>8} "
                    f"{m.seconds:>6.1f}  {settings}{'  (stopped by the clock guard)' if m.stopped_by_clock else ''}")
    return "\n".join(rows)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
