"""How long one tuning trial takes, predicted from the graph's size alone.

The tuner turns its time budget into trial counts with these predictions *before* it runs
anything (``recommenders.tuning.plan_trials``), so the number of trials — and with it the
choice — never depends on how busy the machine is. The constants are seconds on the
reference machine (2 CPU cores), measured on the validation cuts of Last.fm 2K and
ml-latest-small (each model's ``fit_cost``, declared on its class);
what matters is that they are deterministic and roughly right, not exact.

A trial fits the model on the cut and scores every sampled validation user over every item.
Fit work grows with one of three sizes of the graph:

- ``pairs``: co-occurring (item, item) pairs, Σ over users of (items)² — neighbourhood
  models and graph walks build item×item or user×user products of this size;
- ``nnz``: interactions — factor models and networks pass over each once per epoch;
- ``dense``: (modelled items)³ — EASE inverts a dense item×item matrix;
- ``follows``: trust edges — the social recommender's work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.registry import get

#: Default ``--tune-budget``: sized so that ``kgrec train`` of everything but kge on Last.fm 2K
#: (tuning, fitting for serving and the hybrid) stays within 5 minutes on 2 cores.
DEFAULT_BUDGET_S = 120.0
#: Scoring one validation user over the catalogue: seconds per user and per (user × 10⁴ items).
SCORE_PER_USER = 1e-4
SCORE_PER_USER_ITEMS = 2.5e-4
#: The dense models' item cap (EASE's default memory budget: 1 GB at 12 bytes per pair).
DENSE_CAP = 9459


@dataclass(frozen=True)
class GraphSize:
    pairs: float
    nnz: float
    dense: float
    follows: float
    items: int

    @classmethod
    def of(cls, snapshot: GraphSnapshot) -> GraphSize:
        x = snapshot.interactions
        per_user = np.diff(x.indptr).astype(np.float64)
        audience = np.bincount(x.indices, minlength=x.shape[1])
        modelled = min(int((audience >= 2).sum()), DENSE_CAP)
        return cls(pairs=float(np.square(per_user).sum()), nnz=float(x.nnz), dense=(modelled / 1e4) ** 3,
                   follows=float(snapshot.follows.nnz), items=x.shape[1])


def trial_seconds(name: str, snapshot: GraphSnapshot, users: int, size: GraphSize | None = None) -> float:
    """Predicted seconds of one trial of ``name`` (fit on ``snapshot``, score ``users`` users)."""
    s = size or GraphSize.of(snapshot)
    c = get(name).fit_cost
    fit = c.pairs * s.pairs / 1e7 + c.nnz * s.nnz / 1e5 + c.dense * s.dense + c.follows * s.follows / 1e4 + c.fixed
    return fit + users * (SCORE_PER_USER + SCORE_PER_USER_ITEMS * s.items / 1e4)
