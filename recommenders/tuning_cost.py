"""How long one tuning trial takes, predicted from the graph's size alone.

The tuner turns its time budget into trial counts with these predictions *before* it runs
anything (``recommenders.tuning.plan_trials``), so the number of trials — and with it the
choice — never depends on how busy the machine is. The constants are seconds on the
reference machine (2 CPU cores), measured on the validation cuts of Last.fm 2K and
ml-latest-small (see ``FIT_COST``);
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

from graph.snapshot import GraphSnapshot

#: Default ``--tune-budget``: sized so that ``kgrec train`` of everything but kge on Last.fm 2K
#: (tuning, fitting for serving and the hybrid) stays within 5 minutes on 2 cores.
DEFAULT_BUDGET_S = 120.0
#: Seconds of one fit per unit of each size: (10⁷ pairs, 10⁵ interactions, (10⁴ items)³, 10⁴ follows,
#: fixed). CPU seconds measured with the defaults on the cuts of Last.fm 2K and ml-latest-small
#: (CPU time, not wall time, because the 2-core machine was shared; with two busy BLAS threads
#: EASE takes less wall time than this); multvae and kge from their own benchmarks (about 1 and
#: 3 minutes on Last.fm 2K).
FIT_COST: dict[str, tuple[float, float, float, float, float]] = {
    "ease": (0.0, 2.0, 47.0, 0.0, 0.5),
    "graph_walk": (0.44, 5.6, 0.0, 0.0, 0.3),
    "itemcf": (0.42, 0.1, 0.0, 0.0, 0.05),
    "usercf": (0.0, 0.25, 0.0, 0.0, 0.05),
    "association": (0.36, 0.05, 0.0, 0.0, 0.05),
    "als": (0.0, 0.8, 0.0, 0.0, 0.3),
    "bpr": (0.0, 1.8, 0.0, 0.0, 0.0),
    "content": (0.0, 0.02, 0.0, 0.0, 0.03),
    "social": (0.0, 0.0, 0.0, 1.0, 0.02),
    "popularity": (0.0, 0.0, 0.0, 0.0, 0.01),
    "multvae": (0.0, 80.0, 0.0, 0.0, 2.0),
    "kge": (0.0, 200.0, 0.0, 0.0, 5.0),
}
#: For a recommender not listed: a neighbourhood-like cost.
OTHER = (0.5, 1.0, 0.0, 0.0, 0.5)
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
    per_pairs, per_nnz, per_dense, per_follows, fixed = FIT_COST.get(name, OTHER)
    fit = (per_pairs * s.pairs / 1e7 + per_nnz * s.nnz / 1e5 + per_dense * s.dense + per_follows * s.follows / 1e4
           + fixed)
    return fit + users * (SCORE_PER_USER + SCORE_PER_USER_ITEMS * s.items / 1e4)
