"""Graph walks over the user–item–tag–social graph: RP3β, or a random walk with restart.

A walker starts at the user and takes three steps along typed edges:

* user → item → user → item   (``INTERACTED`` both ways; weight 1 − ``tag_weight``)
* user → item → tag → item    (``INTERACTED``, ``HAS_TAG`` both ways; weight ``tag_weight``)
* user → friend → item        (``FOLLOWS``, ``INTERACTED``; weight ``social_weight``)
* user → item → cell → item   (NEAR: places sharing a grid cell; weight ``near_weight``)

On a graph whose items have coordinates, ``near_weight`` takes that share of the walk's mass
from the first two families (they keep ``1 − near_weight`` of theirs) for walks through grid
cells of side ``near_cell`` (a quantile of the dataset's learned distance unit,
``recommenders.models.near_cells``): places near the places the user visited. Without
coordinates the NEAR family does not exist and the walk is the same as with ``near_weight`` 0.

Each step follows the row-normalised transition probabilities raised to ``alpha``, and the
landing item's mass is divided by its popularity to the power ``beta`` (RP3β,
Paudel et al. 2016). The popularity counted is at least ``audience_floor``: an item heard
by one or two people is not boosted above one heard by a few dozen, because its few
co-interactions are mostly chance; the penalty only holds back the very popular items.
With ``method="rwr"`` the walker restarts at the user with probability ``restart`` at each
step, so a path of length L keeps weight (1 − restart)^L: a truncated random walk with
restart in the manner of Pixie.

The item → item part of the three-step walks is precomputed at fit time and sparsified to
each item's ``neighbours`` heaviest targets, so scoring one user is a sparse gather over
the user's items plus their friends' items. The score is a sum over paths, so the
explanation lists the highest-mass paths with contributions that add up to the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.base import FitCost, Reason, TopReasons, Tunable
from kgrec.recommenders.config import AtLeastOne, ConfigError, Fraction, ModelConfig, NonNegative, Positive, Range
from kgrec.recommenders.models.geo import geo_places
from kgrec.recommenders.models.geo_space import QUANTILES, has_coordinates
from kgrec.recommenders.models.graph_walk_explain import GraphWalkExplainer, GraphWalkState
from kgrec.recommenders.models.near_cells import snapshot_cells
from kgrec.recommenders.models.scored import HistoryScored, ScoredRecommender
from kgrec.recommenders.models.sparse_rows import (
    csr_restore,
    csr_state,
    graded,
    interaction_weights,
    item_users,
    keep_top_per_row,
    row_normalise,
    snapshot_view,
    weight_vector,
    weighted_row_sum,
)
from kgrec.recommenders.registry import register
from kgrec.recommenders.saved_arrays import Dim

if TYPE_CHECKING:
    import optuna

BLOCK = 1024


@dataclass(frozen=True)
class GraphWalkConfig(ModelConfig):
    """Defaults chosen on a validation cut of the Last.fm 2K training part (per-user 80/20
    of train, seed 43): alpha 0.8, beta 0.5 with the audience counted as at least 25,
    400 neighbours, tag paths 35 %, friends 2 %."""

    method: Literal["rp3b", "rwr"] = "rp3b"
    alpha: Annotated[float, Positive] = 0.8
    beta: Annotated[float, NonNegative] = 0.5
    audience_floor: Annotated[float, NonNegative] = 25.0
    tag_weight: Annotated[float, Fraction] = 0.35
    social_weight: Annotated[float, NonNegative] = 0.02
    restart: Annotated[float, Range(0, 1, open_high=True)] = 0.15
    neighbours: Annotated[int, AtLeastOne] = 400
    interaction_weighting: Literal["binary", "log", "raw"] = "binary"
    tag_weighting: Literal["binary", "log", "raw"] = "log"
    near_weight: Annotated[float, Range(0, 1, open_high=True)] = 0.0
    near_cell: Annotated[float, Range(0, 1)] = 0.75

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.near_cell not in QUANTILES:
            raise ConfigError(self.model_name, "near_cell", f"must be one of {', '.join(map(str, QUANTILES))} "
                              f"(a quantile of the learned distance unit; got {self.near_cell!r})")


def _transitions(snapshot: GraphSnapshot, c: GraphWalkConfig) -> tuple[Any, ...]:
    """The walk's one-step transition matrices (user→item, item→user, item→tag, tag→item,
    user→user, and the CSC forms explanations read) and the audience penalty: a function of
    the snapshot and these options alone, so models that share both (a bundle's graph_walk and
    the hybrid's) share one copy (``snapshot_view``)."""
    b = interaction_weights(snapshot, c.interaction_weighting)
    p_ui = _power(row_normalise(b), c.alpha)
    p_iu = _power(row_normalise(b.T.tocsr()), c.alpha)
    tags = sp.csr_matrix(snapshot.item_tags, dtype=np.float64, copy=True)
    if c.tag_weighting == "binary":
        tags.data[:] = 1.0
    elif c.tag_weighting == "log":
        tags.data = np.log1p(tags.data)
    p_it = _power(row_normalise(tags), c.alpha)
    p_ti = _power(row_normalise(tags.T.tocsr()), c.alpha)
    p_uf = _power(row_normalise(snapshot.follows), c.alpha)
    ui_csc = sp.csc_matrix(p_ui)
    ui_csc.sort_indices()
    ti_csc = sp.csc_matrix(p_ti)
    ti_csc.sort_indices()
    audience = np.diff(item_users(snapshot).indptr).astype(np.float64)
    penalty = np.power(np.maximum(audience, max(c.audience_floor, 1.0)), -c.beta)
    for m in (p_ui, p_iu, p_it, p_ti, p_uf, ui_csc, ti_csc):
        for part in (m.data, m.indices, m.indptr):
            part.setflags(write=False)
    penalty.setflags(write=False)
    return p_ui, p_iu, p_it, p_ti, p_uf, ui_csc, ti_csc, penalty


def _power(m: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    if alpha != 1.0:
        m.data = np.power(m.data, alpha)
    m.sort_indices()
    return m


@register("graph_walk", fit_cost=FitCost(pairs=0.44, nnz=5.6, fixed=0.3), default_rank=2, hybrid_rank=1)
class GraphWalk(ScoredRecommender, HistoryScored, Tunable):
    Config = GraphWalkConfig
    config: GraphWalkConfig

    @classmethod
    def search_space(cls, trial: optuna.Trial, snapshot: GraphSnapshot) -> dict[str, Any]:
        """RP3β's exponents, the audience floor and neighbours; tag and friend paths only
        where the graph has tags and follows; log weighting only where weights differ."""
        out: dict[str, Any] = {
            "alpha": trial.suggest_float("alpha", 0.3, 1.2),
            "beta": trial.suggest_float("beta", 0.0, 0.9),
            "audience_floor": trial.suggest_float("audience_floor", 1.0, 200.0, log=True),
            "neighbours": trial.suggest_int("neighbours", 50, 600, log=True),
        }
        if snapshot.item_tags.nnz:
            out["tag_weight"] = trial.suggest_float("tag_weight", 0.0, 0.7)
        if snapshot.follows.nnz:
            out["social_weight"] = trial.suggest_float("social_weight", 0.0, 0.3)
        if graded(snapshot):
            out["interaction_weighting"] = trial.suggest_categorical("interaction_weighting", ["binary", "log"])
        if has_coordinates(snapshot):
            out["near_weight"] = trial.suggest_float("near_weight", 0.0, 0.6)
            out["near_cell"] = trial.suggest_categorical("near_cell", [0.5, 0.75, 0.9])
        return out

    @classmethod
    def search_starts(cls, snapshot: GraphSnapshot) -> list[dict[str, Any]]:
        """On graphs with coordinates, the defaults with NEAR paths of a few weights and cell sizes
        (the tuner keeps whichever does best on the validation cut, or none)."""
        if not has_coordinates(snapshot):
            return []
        d = GraphWalkConfig()
        base: dict[str, Any] = {"alpha": d.alpha, "beta": d.beta, "audience_floor": d.audience_floor,
                                "neighbours": d.neighbours}
        if snapshot.item_tags.nnz:
            base["tag_weight"] = d.tag_weight
        if snapshot.follows.nnz:
            base["social_weight"] = d.social_weight
        if graded(snapshot):
            base["interaction_weighting"] = d.interaction_weighting
        return [{**base, "near_weight": w, "near_cell": cell} for w, cell in ((0.15, 0.75), (0.3, 0.75), (0.3, 0.9))]

    def _path_weights(self, near: bool) -> tuple[float, float, float, float]:
        """Weights of (user-item-user-item, user-item-tag-item, user-friend-item, user-item-cell-
        item) paths; ``near``: whether the graph has the cells."""
        c = self.config
        w_near = c.near_weight if near else 0.0
        if c.method == "rp3b":
            return (1.0 - c.tag_weight) * (1 - w_near), c.tag_weight * (1 - w_near), c.social_weight, w_near
        if c.method == "rwr":
            keep = 1.0 - c.restart
            return ((1.0 - c.tag_weight) * (1 - w_near) * keep**3, c.tag_weight * (1 - w_near) * keep**3,
                    c.social_weight * keep**2, w_near * keep**3)
        raise ValueError(f"unknown method {c.method!r}; expected rp3b or rwr")

    def _prepare(self, snapshot: GraphSnapshot) -> None:
        c = self.config
        if not 0 <= c.tag_weight <= 1 or c.social_weight < 0 or not 0 <= c.restart < 1:
            raise ValueError("tag_weight must be in [0, 1], social_weight >= 0 and restart in [0, 1)")
        if c.audience_floor < 0:
            raise ValueError("audience_floor must be >= 0")
        key = ("graph_walk", c.interaction_weighting, c.tag_weighting, repr(c.alpha), repr(c.beta),
               repr(c.audience_floor))
        (self._p_ui, self._p_iu, self._p_it, self._p_ti, self._p_uf, self._ui_csc, self._ti_csc,
         self._penalty) = snapshot_view(snapshot, key, lambda: _transitions(snapshot, c))
        places = geo_places(snapshot) if c.near_weight > 0 else None
        self._w_user, self._w_tag, self._w_social, self._w_near = self._path_weights(places is not None)
        if places is not None:
            cells = snapshot_cells(snapshot, places, c.near_cell, c.seed)
            self._p_ic = _power(row_normalise(cells), c.alpha)
            self._p_ci = _power(row_normalise(sp.csr_matrix(cells.T)), c.alpha)

    def _fit(self, snapshot: GraphSnapshot) -> None:
        n = len(snapshot.items)
        pen = sp.diags(self._penalty)
        users, tags, nears = [], [], []
        for start in range(0, n, BLOCK):
            rows = np.arange(start, min(n, start + BLOCK))
            via_users = sp.csr_matrix(self._p_iu[rows] @ self._p_ui @ pen) * self._w_user
            via_tags = sp.csr_matrix(self._p_it[rows] @ self._p_ti @ pen) * self._w_tag
            via_near = (sp.csr_matrix(self._p_ic[rows] @ self._p_ci @ pen) * self._w_near if self._w_near > 0
                        else sp.csr_matrix((len(rows), n)))
            total = sp.coo_matrix(via_users + via_tags + via_near)
            off_diagonal = total.col != rows[total.row]  # an item does not lead to itself
            total = sp.csr_matrix((total.data[off_diagonal], (total.row[off_diagonal], total.col[off_diagonal])),
                                  shape=total.shape)
            total = keep_top_per_row(total, self.config.neighbours)
            mask = total.copy()
            mask.data[:] = 1.0
            users.append(sp.csr_matrix(via_users.multiply(mask)))
            tags.append(sp.csr_matrix(via_tags.multiply(mask)))
            nears.append(sp.csr_matrix(via_near.multiply(mask)))
        self._s_user = _stack(users, n)
        self._s_tag = _stack(tags, n)
        self._s_near = _stack(nears, n)
        self._sim = sp.csr_matrix(self._s_user + self._s_tag + self._s_near)
        self._sim.sort_indices()
        self._publish()

    #: ``sim`` = ``s_user + s_tag + s_near``, saved as it is served rather than summed in every process.
    ARRAYS: ClassVar[dict[str, tuple[Dim, ...]]] = {"s_user": ("items", "items"), "s_tag": ("items", "items"),
                                                    "s_near": ("items", "items"), "sim": ("items", "items")}

    def _state(self) -> dict[str, np.ndarray]:
        return {**csr_state("s_user", self._s_user), **csr_state("s_tag", self._s_tag),
                **csr_state("s_near", self._s_near), **csr_state("sim", self._sim)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._s_user = csr_restore("s_user", arrays)
        self._s_tag = csr_restore("s_tag", arrays)
        self._s_near = csr_restore("s_near", arrays)
        self._sim = csr_restore("sim", arrays)
        self._publish()

    def _publish(self) -> None:
        """Freeze the fitted walk (after fit and after load) and give it to a new explainer, so
        the explainer sees only this read-only state and its per-user cache dies with the fit."""
        self._walks = GraphWalkState.of(
            p_ui=self._p_ui, p_iu=self._p_iu, p_it=self._p_it, p_uf=self._p_uf, ui_csc=self._ui_csc,
            ti_csc=self._ti_csc, s_user=self._s_user, s_tag=self._s_tag, s_near=self._s_near, penalty=self._penalty,
            w_social=self._w_social,
        )
        self._explainer = GraphWalkExplainer(self._walks, self._snap(), self._paths)

    @property
    def walk_state(self) -> GraphWalkState:
        """The fitted walk, read-only: what explanations are computed from."""
        self._snap()
        return self._walks

    def _scores(self, u: int) -> np.ndarray | None:
        items, p_items, friends, p_friends = self._walks.start(u)
        if len(items) == 0 and len(friends) == 0:
            return None
        scores = weighted_row_sum(self._sim, items, p_items)
        if len(friends) and self._w_social > 0:
            scores += weighted_row_sum(self._p_ui, friends, p_friends * self._w_social) * self._penalty
        return scores

    def _history_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The walk from a history newer than the fit (the API's feedback): the same first
        step as ``GraphWalkState.start`` (row-normalised weights to the power alpha) through the item→item
        walks; the friends' part is left out because a bare history names no user. A disliked
        item (negative weight) walks with negative mass, pushing its neighbours down."""
        w = weight_vector(weights, self.config.interaction_weighting)
        total = w[w > 0].sum()
        if total <= 0:
            return None
        return weighted_row_sum(self._sim, items, np.sign(w) * np.power(np.abs(w) / total, self.config.alpha))

    def _explain(self, u: int, i: int, score: float) -> list[Reason]:
        return list(self._explain_top(u, i, score, None).reasons)

    def _explain_top(self, u: int, i: int, score: float, limit: int | None) -> TopReasons:
        return self._explainer.explain_top(u, i, limit)


def _stack(parts: list[sp.csr_matrix], n: int) -> sp.csr_matrix:
    if not parts:
        return sp.csr_matrix((n, n))
    out = sp.csr_matrix(sp.vstack(parts, format="csr"))
    out.eliminate_zeros()
    out.sort_indices()
    return out
