"""The hybrid's rating features, and the model behind its predicted-rating column.

On graphs with explicit ratings (``recommenders.evaluation.explicit_ratings``) the hybrid's
feature rows carry the item's mean rating, its difference from the user's mean and the rating a
rating model predicts for the pair, minus the user's mean (``features.RATING``, ``PREDICTED``).
They are one optional group of the hybrid's choice on validation (``selection.select``,
``optional``): the rankers are also scored without them, and the group serves only when a ranker
using it wins; otherwise the serving hybrid does not compute them (and fits no rating model).

The predicted ratings come from ``svdpp`` (``RATING_MODEL``). On the validation cut it is fitted on
the cut's training part; ``kgrec train`` fitted it on the whole graph before the hybrid, and its
chosen chain length is reused there, so the cut's fit runs one Gibbs chain. When serving, that
very model is taken when it was fitted on the same snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import PredictsRatings, Recommender
from kgrec.recommenders.hybrid.selection import Selection
from kgrec.recommenders.registry import create, get

#: The model whose predictions fill the predicted-rating column.
RATING_MODEL = "svdpp"
#: Where a hybrid keeps it, inside its own directory.
RATER_DIR = "rating_model"
#: The optional feature group's name in ``Selection.without``.
GROUP = "ratings"
#: The columns of the group (``features.RATING`` and ``features.PREDICTED``).
COLUMNS = ("item_rating", "rating_vs_user", "predicted_rating")


def optional_columns(names: Sequence[str]) -> dict[str, list[int]]:
    """The rating group's column indices in a feature list (none when it has no rating columns)."""
    return {GROUP: [j for j, n in enumerate(names) if n in COLUMNS]}


def kept_flags(flags: tuple[bool, bool, bool], selection: Selection) -> tuple[bool, bool, bool]:
    """The feature flags (time, ratings, predicted) the serving hybrid needs: no rating columns
    when the chosen ranker does without them, or when a component serves as it is."""
    time, ratings, predicted = flags
    if GROUP in selection.without or selection.serve != "ranker":
        return time, False, False
    return time, ratings, predicted


def fit_rater(snapshot: GraphSnapshot, fitted: Mapping[str, Recommender], like: Recommender | None = None,
              seed: int = 42) -> Recommender | None:
    """The rating model for ``snapshot``: the one in ``fitted`` when it was fitted on this very
    snapshot, else one fitted now with the options of the one in ``like`` or ``fitted`` and the
    chain length it chose (so no validation chain runs again); None where it does not apply."""
    if not get(RATING_MODEL).applies_to(snapshot):
        return None
    done = fitted.get(RATING_MODEL)
    on = getattr(done, "snapshot", None)
    if done is not None and on is not None and on.fingerprint == snapshot.fingerprint:
        return done
    model = like or done
    if model is None:
        return create(RATING_MODEL, seed=seed).fit(snapshot)
    n_iter = (model.manifest_entry() or {}).get("n_iter")
    config = model.config.replace(n_iter=n_iter) if n_iter else model.config
    return get(RATING_MODEL)(config).fit(snapshot)


def save_rater(rater: Recommender | None, directory: Path) -> None:
    if rater is not None:
        rater.save(directory / RATER_DIR)


def load_rater(directory: Path, snapshot: GraphSnapshot, predicted: bool) -> Recommender | None:
    if not predicted:
        return None
    rater = get(RATING_MODEL).load(directory / RATER_DIR, snapshot)
    if not isinstance(rater, PredictsRatings):
        raise ValueError(f"{directory}: {RATING_MODEL} does not predict ratings")
    return rater
