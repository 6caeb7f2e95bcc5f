"""Off-policy estimators for logged slates (pure numpy).

Data: ``n`` logged requests; request ``r`` showed items ``L_r`` with rewards ``y`` (1: the user
chose it). For every shown item, ``p0`` is the logging policy's *marginal* probability of showing
it (anywhere in the list: item-level) and ``pe`` the target policy's. Under the item-level
assumption — an item's reward does not depend on its slot or neighbours — a target's value per
request is ``V = E_r sum_i pe_i r_i`` and:

* ``replay``: the matched items' mean reward times the target's list length (a logged item the
  target would also show); unbiased for a uniformly random logger, where it equals SNIPS;
* ``IPS``: ``mean_r sum_{i in L_r} w_i y_i`` with ``w_i = pe_i / p0_i``;
* ``SNIPS``: IPS over ``mean_r sum_i w_i``, times the target mass the logger can show (``covered``);
* ``DR``: ``mean_r [dm_r + sum_{i in L_r} w_i (y_i - rhat_i)]``, ``dm_r`` the reward model's value of
  the target's list (``DM`` alone).

Each comes with a normal 95 % interval, cluster-robust by user (the delta method for ratios), and
``ess`` — Kish's effective sample size of the item weights, ``(sum w)^2 / sum w^2``.
``fit_logistic`` is the reward model DR uses (Newton's method, L2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Slates:
    """Logged impressions (flattened) and per-request target quantities."""

    req: np.ndarray        # per impression: request index
    y: np.ndarray          # per impression: reward
    p0: np.ndarray         # per impression: logger's marginal probability of showing the item
    pe: np.ndarray         # per impression: target's marginal probability of showing the item
    rhat: np.ndarray       # per impression: reward model's prediction
    dm: np.ndarray         # per request: sum over the target's items of pe * rhat
    covered: np.ndarray    # per request: target mass on items the logger could show
    k_e: np.ndarray        # per request: target list length (sum of pe)
    cluster: np.ndarray    # per request: user (clusters of the intervals)

    @property
    def n(self) -> int:
        return len(self.dm)

    def weights(self) -> np.ndarray:
        safe = np.where(self.p0 > 0, self.p0, 1.0)
        return np.where(self.p0 > 0, self.pe / safe, 0.0)


@dataclass(frozen=True)
class Estimate:
    """One estimator's value per request with its 95 % interval, the ESS and the requests used."""

    name: str
    value: float
    lo: float
    hi: float
    ess: float
    n: int

    def to_dict(self) -> dict[str, float | str | int]:
        return {"estimator": self.name, "value": self.value, "lo": self.lo, "hi": self.hi, "ess": self.ess,
                "n": self.n}


def _per_request(d: Slates, v: np.ndarray) -> np.ndarray:
    return np.bincount(d.req, weights=v, minlength=d.n)


def cluster_se(num: np.ndarray, den: np.ndarray | None, cluster: np.ndarray) -> tuple[float, float]:
    """The mean of ``num`` (or the ratio of sums ``num / den``) and its cluster-robust standard error."""
    n = len(num)
    if n == 0:
        return 0.0, 0.0
    if den is None:
        est = float(num.mean())
        resid, scale = num - est, 1.0 / n
    else:
        total = float(den.sum())
        if total == 0:
            return 0.0, 0.0
        est = float(num.sum() / total)
        resid, scale = num - est * den, 1.0 / total
    _, inv = np.unique(cluster, return_inverse=True)
    g = np.bincount(inv, weights=resid)
    groups = len(g)
    var = (groups / max(groups - 1, 1)) * float((g**2).sum()) * scale**2
    return est, float(np.sqrt(var))


def ess(w: np.ndarray) -> float:
    """Kish's effective sample size of weights ``w``."""
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def _estimate(name: str, num: np.ndarray, den: np.ndarray | None, d: Slates, factor: float = 1.0) -> Estimate:
    v, se = cluster_se(num, den, d.cluster)
    return Estimate(name, v * factor, (v - Z95 * se) * factor, (v + Z95 * se) * factor, ess(d.weights()), d.n)


def replay(d: Slates) -> Estimate:
    matched = d.pe * (d.p0 > 0)
    return _estimate("replay", _per_request(d, matched * d.y), _per_request(d, matched), d,
                     float(d.k_e.mean()) if d.n else 0.0)


def ips(d: Slates) -> Estimate:
    return _estimate("IPS", _per_request(d, d.weights() * d.y), None, d)


def snips(d: Slates) -> Estimate:
    w = d.weights()
    return _estimate("SNIPS", _per_request(d, w * d.y), _per_request(d, w), d,
                     float(d.covered.mean()) if d.n else 0.0)


def doubly_robust(d: Slates) -> Estimate:
    return _estimate("DR", d.dm + _per_request(d, d.weights() * (d.y - d.rhat)), None, d)


def direct(d: Slates) -> Estimate:
    return _estimate("DM", d.dm.astype(np.float64), None, d)


def all_estimates(d: Slates) -> list[Estimate]:
    """Replay, IPS, SNIPS, DR and DM, in that order."""
    return [replay(d), ips(d), snips(d), doubly_robust(d), direct(d)]


def fit_logistic(features: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Weights of an L2-regularised logistic regression (Newton's method); features include the bias."""
    w = np.zeros(features.shape[1])
    if len(y) == 0:
        return w
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-features @ w))
        grad = features.T @ (p - y) / len(y) + l2 * w
        hess = (features * (p * (1 - p))[:, None]).T @ features / len(y) + l2 * np.eye(features.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def predict_logistic(features: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-features @ w))
