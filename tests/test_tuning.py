"""The tuner: optuna studies on the validation cut of the planted synthetic graph."""

from __future__ import annotations

import optuna
import pytest

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import Tunable
from kgrec.recommenders.evaluation.validation_cut import UserSample, user_ndcg, validation_cut
from kgrec.recommenders.registry import create, registry
from kgrec.recommenders.tuning.trial_cost import trial_seconds
from kgrec.recommenders.tuning.tuner import (
    MAX_TRIALS,
    MAX_USERS,
    TuningResult,
    plan_trials,
    table,
    tunable,
    tune,
    weights_from_defaults,
)

NAMES = ("itemcf", "usercf", "graph_walk")
SEED = 5
BUDGET = 6.0
#: The wall-clock guard off: how many trials run must not depend on how busy the machine is.
NO_GUARD = float("inf")


@pytest.fixture(scope="module")
def tuned(snapshot: GraphSnapshot) -> TuningResult:
    return tune(snapshot, NAMES, seed=SEED, budget_s=BUDGET, guard=NO_GUARD)


def test_the_choice_is_at_least_the_defaults_on_the_cut(tuned: TuningResult, snapshot: GraphSnapshot) -> None:
    cut = validation_cut(snapshot, SEED)
    users = UserSample.of(cut, SEED, MAX_USERS).users
    assert set(tuned.models) == set(NAMES)
    for name, m in tuned.models.items():
        assert m.trials[0].params == {} and m.trials[0].state == "complete"  # trial 0: the shipped defaults
        assert len(m.trials) == m.planned > 1
        default = user_ndcg(create(name, seed=SEED).fit(cut.train), cut, users).mean()
        chosen = create(name, seed=SEED, **m.chosen).fit(cut.train)
        assert m.default_ndcg == pytest.approx(default)
        assert m.best_ndcg == pytest.approx(user_ndcg(chosen, cut, users).mean())
        assert m.best_ndcg >= m.default_ndcg
        assert m.best_ndcg == max(t.ndcg for t in m.trials if t.ndcg is not None)
        assert tuned.fitted[name].config == chosen.config  # kept for the hybrid, fitted on the cut
        assert tuned.fitted[name].snapshot.fingerprint == cut.train.fingerprint
    assert any(m.best_ndcg > m.default_ndcg for m in tuned.models.values())


def test_pruned_trials_stop_after_the_first_stage(tuned: TuningResult) -> None:
    trials = [t for m in tuned.models.values() for t in m.trials]
    pruned = [t for t in trials if t.state == "pruned"]
    assert pruned, "the median pruner never fired"
    assert all(t.ndcg is None and t.first_stage is not None for t in pruned)


def test_same_seed_same_choice(tuned: TuningResult, snapshot: GraphSnapshot) -> None:
    again = tune(snapshot, NAMES, seed=SEED, budget_s=BUDGET, guard=NO_GUARD)
    assert again.configs() == tuned.configs()
    for name, m in tuned.models.items():
        assert [(t.params, t.state, t.ndcg) for t in again.models[name].trials] == [
            (t.params, t.state, t.ndcg) for t in m.trials]
    other = tune(snapshot, NAMES, seed=SEED + 1, budget_s=BUDGET, guard=NO_GUARD)
    assert [t.params for t in other.models["itemcf"].trials] != [t.params for t in tuned.models["itemcf"].trials]


def test_the_record_round_trips_and_names_the_space(tuned: TuningResult) -> None:
    doc = tuned.to_json()
    assert TuningResult.from_json(doc).to_json() == doc
    space = doc["models"]["graph_walk"]["space"]
    assert {"alpha", "beta", "audience_floor", "tag_weight", "social_weight", "neighbours"} <= set(space)
    assert space["beta"]["name"] == "FloatDistribution"
    assert {"weighting", "shrink", "neighbours", "bm25_b"} <= set(doc["models"]["itemcf"]["space"])
    lines = table(tuned).splitlines()
    assert len(lines) == 1 + len(NAMES) and all(n in table(tuned) for n in NAMES)


def test_the_plan_comes_from_the_budget_and_the_graph_not_the_clock(snapshot: GraphSnapshot) -> None:
    names = ["itemcf", "graph_walk", "ease"]
    plan = plan_trials(snapshot, names, 30.0, 100)
    assert plan == plan_trials(snapshot, names, 30.0, 100)
    assert all(1 <= n <= MAX_TRIALS for n in plan.values())
    assert sum(plan[n] * trial_seconds(n, snapshot, 100) for n in names) <= 30.0
    assert plan_trials(snapshot, names, 0.0, 100) == {n: 1 for n in names}  # no budget: the defaults only
    bigger = plan_trials(snapshot, names, 300.0, 100)
    assert all(bigger[n] >= plan[n] for n in names) and sum(bigger.values()) > sum(plan.values())


def test_the_strongest_defaults_get_the_most_search(snapshot: GraphSnapshot) -> None:
    weights = weights_from_defaults({"itemcf": 0.30, "usercf": 0.15, "content": None})
    assert weights == {"itemcf": 1.0, "usercf": 0.5**4, "content": 0.0}
    plan = plan_trials(snapshot, ["itemcf", "usercf", "content"], 2.0, 100, weights)
    assert plan["content"] == 1 and plan["itemcf"] > plan["usercf"] > 1


def test_user_settings_hold_in_every_trial(snapshot: GraphSnapshot) -> None:
    result = tune(snapshot, ["itemcf"], seed=SEED, budget_s=2.0, fixed={"itemcf": {"weighting": "bm25"}},
                  guard=NO_GUARD)
    m = result.models["itemcf"]
    assert len(m.trials) > 1 and all(t.params["weighting"] == "bm25" for t in m.trials)
    assert m.chosen["weighting"] == "bm25"


def test_kge_is_tuned_only_when_asked() -> None:
    assert not tunable("kge") and tunable("kge", tune_kge=True)
    assert not tunable("popularity") and tunable("ease")


@pytest.mark.parametrize("name", sorted(n for n in registry() if issubclass(registry()[n], Tunable)))
def test_every_search_space_gives_valid_options(name: str, snapshot: GraphSnapshot) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        overrides = registry()[name].search_space(study.ask(), snapshot)
        assert overrides
        create(name, **overrides)  # every key is a Config field


def test_nothing_tunable_builds_no_validation_cut(snapshot: GraphSnapshot) -> None:
    """kge alone (not asked to tune) or a model without a search space trains with its defaults
    and the manifest says nothing was tuned, instead of recording an empty search."""
    from kgrec.recommenders.tuning.training import train_models

    assert not tunable("popularity")
    trained = train_models(snapshot, ["popularity"], tune_models=True, budget_s=5)
    assert trained.tuning is None and trained.manifest["tuning"] == {"tuned": False}
    assert set(trained.models) == {"popularity"}
