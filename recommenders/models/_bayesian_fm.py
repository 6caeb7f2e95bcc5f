"""Fitting Bayesian SVD++ "flipped" (+ item tags, + trust) with myFM, reduced to ``RatingFactors``.

The model is a Bayesian factorisation machine, Gibbs-sampled by myFM (Rendle 2013; Rendle et al.
2019, "On the difficulty of evaluating baselines": Bayesian SVD++ flipped). A (user u, item i)
row has two blocks of features:

* user side: the one-hot of u (plus |T(u)|^-½ over the users u follows, when trust is on: the
  trusted users' own taste factors join u's, the SocialMF idea as an FM feature) and |N(u)|^-½
  over the items u rated (SVD++'s implicit part);
* item side: the one-hot of i, |R(i)|^-½ over the users who rated i ("flipped") and |G(i)|^-½
  over the item's tags.

An FM score is w0 + Σ w_f x_f + Σ_{f<g} ⟨v_f, v_g⟩ x_f x_g. Pairs within a block depend on u
only or on i only (the biases); the cross pairs are one inner product, so the posterior mean over
S kept samples is exactly ``RatingFactors``' form with the factor matrices concatenated over the
samples (S·k dimensions, item side divided by S). That space is reduced to ``serve_dim``
dimensions by the best rank-r approximation of the training users' score matrix M = X Qᵀ (a
randomised range finder, Halko et al. 2011): items are served as V_r and every user-side matrix
goes through the same linear map A = Qᵀ V_r, so the parts of a prediction stay exact.

Chosen on a seeded per-user holdout of the training ratings (``validation_fraction`` of each
user's, at least one kept): the chain length — one chain, the validation RMSE of the posterior
mean a fit of each length would serve, read at every ``checkpoint`` iterations from prefix sums of
per-iteration predictions, stopping after ``patience`` checkpoints without improvement — and,
with ``trust="auto"``, whether trust is used (one chain each way; trust is kept unless its best
validation RMSE is worse by more than ``trust_margin``). Then one chain on all the ratings.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from kgrec.recommenders.models.rating_factors import RatingFactors

#: Power iterations of the range finder that reduces the S·k space.
POWER_ITERS = 1
#: Training pairs sampled to report how much the reduction changed the scores.
COMPRESS_SAMPLE = 20_000


@dataclass(frozen=True)
class FitOptions:
    rank: int = 10
    n_iter: int | None = None
    max_iter: int = 600
    checkpoint: int = 50
    patience: int = 2
    burn_in: float = 0.25
    implicit: bool = True
    flipped: bool = True
    tags: bool = True
    trust: str = "off"  # "off", "auto" or "on"
    validation_fraction: float = 0.15
    trust_margin: float = 0.0
    serve_dim: int = 64
    seed: int = 42


@dataclass
class FitReport:
    trust_used: bool
    n_iter: int
    validation: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[int, float]] = field(default_factory=dict)
    serve_dim: int = 0
    compress_rms: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)


def norm_rows(m: sp.spmatrix) -> sp.csr_matrix:
    """The binary pattern of ``m`` with each row scaled to |row|^-½ (empty rows stay empty)."""
    b = sp.csr_matrix(m, dtype=np.float64, copy=True)
    b.eliminate_zeros()
    b.sum_duplicates()
    b.data[:] = 1.0
    n = np.diff(b.indptr).astype(np.float64)
    b.data *= np.repeat(np.where(n > 0, 1.0 / np.sqrt(np.maximum(n, 1.0)), 0.0), np.diff(b.indptr))
    b.sort_indices()
    return b


@dataclass
class _Design:
    user_block: sp.csr_matrix
    item_block: sp.csr_matrix
    groups: list[int]
    implicit: sp.csr_matrix  # c_uj, users × items
    trust: sp.csr_matrix  # d_uv, users × users (empty when trust is off)
    slices: dict[str, slice]


def _design(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int, opts: FitOptions,
            trust: sp.csr_matrix | None, item_tags: sp.csr_matrix | None) -> _Design:
    rated = sp.csr_matrix((np.ones(len(user)), (user, item)), shape=(n_users, n_items))
    implicit = norm_rows(rated) if opts.implicit else sp.csr_matrix((n_users, n_items))
    tr = norm_rows(trust) if trust is not None else sp.csr_matrix((n_users, n_users))
    onehot = sp.identity(n_users, format="csr") + tr
    user_side: list[tuple[str, sp.csr_matrix]] = [("user", sp.csr_matrix(onehot))]
    if opts.implicit:
        user_side.append(("implicit", implicit))
    item_side: list[tuple[str, sp.csr_matrix]] = [("item", sp.identity(n_items, format="csr"))]
    if opts.flipped:
        item_side.append(("flipped", norm_rows(rated.T)))
    if opts.tags and item_tags is not None and item_tags.nnz:
        item_side.append(("tags", norm_rows(item_tags)))
    slices, start = {}, 0
    for name, m in user_side + item_side:
        slices[name] = slice(start, start + m.shape[1])
        start += m.shape[1]
    return _Design(sp.hstack([m for _, m in user_side], format="csr"),
                   sp.hstack([m for _, m in item_side], format="csr"),
                   [m.shape[1] for _, m in user_side + item_side], implicit, tr, slices)


def _myfm() -> Any:
    """The myfm module (fit time only: serving needs numpy alone). myFM 0.4.0, its latest release,
    imports two names it never uses from ``pkg_resources``, which setuptools no longer ships: a
    stand-in module is offered for that one import and removed again. Its progress bar is
    turned off (it draws one per chain on stderr)."""
    if "myfm" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        stand_in = types.ModuleType("pkg_resources")
        stand_in.DistributionNotFound = LookupError  # type: ignore[attr-defined]
        stand_in.get_distribution = None  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stand_in
        try:
            import myfm
        finally:
            if sys.modules.get("pkg_resources") is stand_in:
                del sys.modules["pkg_resources"]
    import myfm
    import myfm.base
    from tqdm import tqdm

    myfm.base.tqdm = functools.partial(tqdm, disable=True)
    return myfm


def _run_myfm(d: _Design, user: np.ndarray, item: np.ndarray, rating: np.ndarray, opts: FitOptions,
              n_iter: int, kept: int, callback: Callable[..., tuple[bool, str | None]] | None = None) -> Any:
    myfm = _myfm()
    fm = myfm.MyFMRegressor(rank=opts.rank, random_seed=opts.seed)
    x = sp.csr_matrix((len(user), 0))
    fm.fit(x, rating, X_rel=[myfm.RelationBlock(user, d.user_block), myfm.RelationBlock(item, d.item_block)],
           n_iter=n_iter, n_kept_samples=kept, group_shapes=d.groups, callback=callback)
    return fm


def _burn_in(n_iter: int, opts: FitOptions) -> int:
    return int(n_iter * opts.burn_in) // 10 * 10


def _validation_curve(d: _Design, train: tuple[np.ndarray, np.ndarray, np.ndarray],
                      valid: tuple[np.ndarray, np.ndarray, np.ndarray], opts: FitOptions,
                      lo: float, hi: float) -> dict[int, float]:
    """Validation RMSE of the posterior mean that a fit of each checkpoint length would serve,
    from one chain on the training part (see the module doc)."""
    vu, vi, vr = valid
    nu = d.user_block.shape[1]
    ub, ib = d.user_block, d.item_block
    ub2, ib2 = ub.multiply(ub).tocsr(), ib.multiply(ib).tocsr()
    acc = np.zeros(len(vu))
    prefix: dict[int, np.ndarray] = {0: acc.copy()}
    curve: dict[int, float] = {}
    best, since = np.inf, 0
    fixed = opts.n_iter

    def callback(i: int, fm: Any, hyper: Any, history: Any) -> tuple[bool, str | None]:
        nonlocal best, since
        it = i + 1
        w, v = np.asarray(fm.w), np.asarray(fm.V)
        su, si = ub @ v[:nu], ib @ v[nu:]
        bu = ub @ w[:nu] + 0.5 * ((su * su).sum(1) - ub2 @ (v[:nu] ** 2).sum(1))
        bi = ib @ w[nu:] + 0.5 * ((si * si).sum(1) - ib2 @ (v[nu:] ** 2).sum(1))
        acc[:] += fm.w0 + bu[vu] + bi[vi] + np.einsum("nk,nk->n", su[vu], si[vi])
        if it % 10 == 0:
            prefix[it] = acc.copy()
        if it % opts.checkpoint and it != fixed:
            return False, None
        b = _burn_in(it, opts)
        mean = (prefix[it] - prefix[b]) / (it - b) if it % 10 == 0 else (acc - prefix[b]) / (it - b)
        curve[it] = float(np.sqrt(np.mean((np.clip(mean, lo, hi) - vr) ** 2)))
        if fixed is not None:
            return it >= fixed, None
        best, since = (curve[it], 0) if curve[it] < best else (best, since + 1)
        return since >= opts.patience, None

    _run_myfm(d, *train, opts, fixed or opts.max_iter, 1, callback)
    return curve


def _holdout(user: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded per-user validation mask; every user keeps at least one training rating."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(user)), user))
    starts = np.r_[0, np.flatnonzero(np.diff(user[order])) + 1]
    counts = np.diff(np.r_[starts, len(user)])
    rank = np.arange(len(user)) - np.repeat(starts, counts)
    take = np.floor(fraction * counts + rng.random(len(counts))).astype(np.int64).clip(0, counts - 1)
    mask = np.zeros(len(user), dtype=bool)
    mask[order] = rank < np.repeat(take, counts)
    return mask


def _side_terms(block: sp.csr_matrix, w: np.ndarray, cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a block, averaged over the S samples: the linear and within-block pairwise
    terms; and the row's factor sum, concatenated over samples (``w``: S × F, ``cat``: F × S·k)."""
    s = block @ cat
    lin = (block @ w.T).mean(axis=1)
    sq = block.multiply(block) @ (cat * cat).sum(axis=1)
    return lin + 0.5 * ((s * s).sum(axis=1) - sq) / w.shape[0], s


def _posterior_mean(d: _Design, fm: Any) -> dict[str, np.ndarray]:
    w, v = np.asarray(fm.w_samples), np.asarray(fm.V_samples)  # (S, F), (S, F, k)
    n_samples = v.shape[0]
    nu = d.user_block.shape[1]
    cat = np.ascontiguousarray(np.transpose(v, (1, 0, 2)).reshape(v.shape[1], -1))  # F × S·k
    del v
    bu, _ = _side_terms(d.user_block, w[:, :nu], cat[:nu])
    bi, q = _side_terms(d.item_block, w[:, nu:], cat[nu:])
    own = cat[d.slices["user"]]
    none = np.zeros((0, cat.shape[1]))
    return {"mu": np.array(float(np.mean(fm.w0_samples))), "bu": bu, "bi": bi, "P": own,
            "Y": cat[d.slices["implicit"]] if "implicit" in d.slices else none,
            "T": own if d.trust.nnz else none, "Q": q / n_samples}


def _compress(parts: dict[str, np.ndarray], d: _Design, user: np.ndarray, item: np.ndarray, serve_dim: int,
              seed: int) -> tuple[dict[str, np.ndarray], int, float]:
    """Reduce the S·k space to ``serve_dim`` (see the module doc); also the RMS change of a sample
    of training pairs' scores."""
    p, y, t, q = parts["P"], parts["Y"], parts["T"], parts["Q"]
    x = p.copy()
    if y.shape[0]:
        x += d.implicit @ y
    if t.shape[0]:
        x += d.trust @ t
    r = min(serve_dim, x.shape[1], x.shape[0], q.shape[0])
    ell = min(r + 32, x.shape[1], x.shape[0], q.shape[0])
    rng = np.random.default_rng(seed)
    z = np.linalg.qr(q @ (x.T @ rng.normal(size=(x.shape[0], ell))))[0]  # the range of Mᵀ
    for _ in range(POWER_ITERS):
        z = np.linalg.qr(q @ (x.T @ np.linalg.qr(x @ (q.T @ z))[0]))[0]
    _, _, vt = np.linalg.svd(x @ (q.T @ z), full_matrices=False)
    vr = z @ vt[:r].T  # items × r, orthonormal columns
    a = q.T @ vr  # S·k × r
    pick = rng.choice(len(user), size=min(len(user), COMPRESS_SAMPLE), replace=False)
    full = np.einsum("nd,nd->n", x[user[pick]], q[item[pick]])
    approx = np.einsum("nr,nr->n", (x @ a)[user[pick]], vr[item[pick]])
    out = {"P": p @ a, "Y": y @ a if y.shape[0] else np.zeros((0, r)),
           "T": t @ a if t.shape[0] else np.zeros((0, r)), "Q": vr}
    return out, r, float(np.sqrt(np.mean((approx - full) ** 2)))


def fit(user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int, n_items: int, *,
        trust: sp.csr_matrix | None = None, item_tags: sp.csr_matrix | None = None,
        opts: FitOptions = FitOptions(),
        known_curves: dict[str, dict[int, float]] | None = None) -> tuple[RatingFactors, FitReport]:
    """Fit on rating index arrays. ``trust``: users × users (a row follows its columns);
    ``item_tags``: items × tags (used as a binary pattern). ``known_curves`` may hold the
    ``"without_trust"`` validation curve of a fit with the same options and data (it is
    deterministic), which is then not computed again."""
    user, item = np.asarray(user, dtype=np.int64), np.asarray(item, dtype=np.int64)
    rating = np.asarray(rating, dtype=np.float64)
    lo, hi = float(rating.min()), float(rating.max())
    if trust is not None:
        trust = sp.csr_matrix(trust, dtype=np.float64, copy=True)
        trust.setdiag(0)
        trust.eliminate_zeros()
        trust = trust if trust.nnz else None
    use_trust = trust is not None and opts.trust != "off"
    candidates = [False, True] if opts.trust == "auto" and trust is not None else [use_trust]
    report = FitReport(use_trust, opts.n_iter or opts.max_iter)
    mask: np.ndarray | None = None
    t0 = time.perf_counter()
    if opts.n_iter is None or len(candidates) > 1:
        mask = _holdout(user, opts.validation_fraction, opts.seed)
        if not mask.any():  # too few ratings to hold any out: the defaults, trust as asked
            report.n_iter = opts.n_iter or min(opts.max_iter, 2 * opts.checkpoint)
            mask = None
    if mask is not None:
        train, valid = (user[~mask], item[~mask], rating[~mask]), (user[mask], item[mask], rating[mask])
        best = np.inf
        for cand in candidates:
            name = "with_trust" if cand else "without_trust"
            curve = (known_curves or {}).get(name)
            if curve is None:
                d = _design(*train[:2], n_users, n_items, opts, trust if cand else None, item_tags)
                curve = _validation_curve(d, train, valid, opts, lo, hi)
            report.curves[name] = curve
            length = opts.n_iter if opts.n_iter is not None else min(curve, key=lambda c: (curve[c], c))
            report.validation[name] = curve[length]
            score = curve[length] - (opts.trust_margin if cand else 0.0)
            if score <= best:  # a tie keeps trust (the later candidate)
                best, report.trust_used, report.n_iter = score, cand, length
        report.seconds["validation"] = time.perf_counter() - t0
        use_trust = report.trust_used
    t0 = time.perf_counter()
    d = _design(user, item, n_users, n_items, opts, trust if use_trust else None, item_tags)
    fm = _run_myfm(d, user, item, rating, opts, report.n_iter, report.n_iter - _burn_in(report.n_iter, opts))
    report.seconds["gibbs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = _posterior_mean(d, fm)
    del fm
    served, report.serve_dim, report.compress_rms = _compress(parts, d, user, item, opts.serve_dim, opts.seed)
    report.seconds["reduce"] = time.perf_counter() - t0
    empty_trust = sp.csr_matrix((n_users, n_users), dtype=np.float64)
    model = RatingFactors(float(parts["mu"]), lo, hi, parts["bu"], parts["bi"], served["P"], served["Q"],
                          served["Y"], served["T"], d.implicit, d.trust if use_trust else empty_trust)
    return model, report
