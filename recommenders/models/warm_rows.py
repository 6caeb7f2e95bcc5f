"""Initial rows for Mult-VAE and ALS warm starts (numpy and scipy only; kge's are in
``embeddings.warm_init``, whose ``match_rows`` both use).

- ``propagate_mean``: each unknown row the weighted mean of its known neighbours' rows, in a
  few rounds (a row whose neighbours are all new is filled once they are).
- ``co_occurrence``: item × item neighbours — users in common plus a little for tags in common.
- ``vae_state`` / ``vae_serving``: Mult-VAE's torch parameters from and to the arrays a bundle
  keeps (``multvae``'s ``enc_w`` … ``out_b``, ``lv_w``/``lv_b`` the log-variance half).
- ``vae_initial_state``: a Mult-VAE state over a new item set: the item-free layers copied, the
  per-item rows (encoder input row, output row and bias) copied by item id, new items from
  their co-occurring known items, items with no known neighbour left at the new net's own init.
- ``solve_rows`` / ``als_initial_factors``: ALS factors over new users and items: shared items
  copied, new users solved from them, new items from the users (one exact least-squares
  half-step each, what an ALS iteration gives them), then every user from the items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from kgrec.embeddings.warm_init import InitReport, match_rows

#: Mult-VAE parameters with one row per item.
ITEM_ROWS = ("encoder.weight", "to_items.weight", "to_items.bias")


def propagate_mean(vectors: np.ndarray, known: np.ndarray, adjacency: sp.spmatrix,
                   rounds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each unknown row of ``vectors`` as the ``adjacency``-weighted (rows × rows, ≥ 0) mean of
    its known neighbours, ``rounds`` times; the vectors and which rows are now known."""
    out = np.array(vectors, copy=True)
    known = np.asarray(known, dtype=bool).copy()
    a = sp.csr_matrix(adjacency)
    for _ in range(rounds):
        todo = np.flatnonzero(~known)
        if not len(todo) or not known.any():
            break
        sub = a[todo][:, np.flatnonzero(known)]
        mass = np.asarray(sub.sum(axis=1)).ravel()
        filled = mass > 0
        if not filled.any():
            break
        out[todo[filled]] = (sub[filled] @ out[known]) / mass[filled, None]
        known[todo[filled]] = True
    return out, known


def co_occurrence(x: sp.spmatrix, tags: sp.spmatrix | None = None, tag_weight: float = 0.1) -> sp.csr_matrix:
    """Item × item: users in common (``x``: users × items) plus ``tag_weight`` × tags in common
    (``tags``: items × tags), no diagonal."""
    b = sp.csr_matrix(x, dtype=np.float32, copy=True)
    b.data[:] = 1.0
    a = sp.csr_matrix(b.T @ b)
    if tags is not None and tag_weight > 0:
        t = sp.csr_matrix(tags, dtype=np.float32, copy=True)
        t.data[:] = 1.0
        a = sp.csr_matrix(a + tag_weight * (t @ t.T))
    a.setdiag(0)
    a.eliminate_zeros()
    return a


def vae_state(w: Mapping[str, np.ndarray], fresh: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mult-VAE's torch parameters (``MultVAENet.state_dict`` names, numpy) from serving arrays;
    without the log-variance half (``lv_w``, a bundle from before warm starts) that half is
    ``fresh``'s."""
    k = w["mu_w"].shape[1]
    latent_w = np.array(fresh["to_latent.weight"], dtype=np.float32, copy=True)
    latent_b = np.array(fresh["to_latent.bias"], dtype=np.float32, copy=True)
    latent_w[:k], latent_b[:k] = np.asarray(w["mu_w"]).T, w["mu_b"]
    if "lv_w" in w and np.asarray(w["lv_w"]).size:
        latent_w[k:], latent_b[k:] = np.asarray(w["lv_w"]).T, w["lv_b"]
    return {"encoder.weight": np.array(w["enc_w"], dtype=np.float32), "encoder_bias": np.array(w["enc_b"]),
            "to_latent.weight": latent_w, "to_latent.bias": latent_b,
            "decoder.weight": np.array(np.asarray(w["dec_w"]).T), "decoder.bias": np.array(w["dec_b"]),
            "to_items.weight": np.array(np.asarray(w["out_w"]).T), "to_items.bias": np.array(w["out_b"])}


def vae_serving(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The serving arrays (float32, (in, out) layout) of a Mult-VAE state."""
    def f(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    k = state["to_latent.weight"].shape[0] // 2
    lat_w, lat_b = state["to_latent.weight"], state["to_latent.bias"]
    return {"enc_w": f(state["encoder.weight"]), "enc_b": f(state["encoder_bias"]),
            "mu_w": f(lat_w[:k].T), "mu_b": f(lat_b[:k]), "lv_w": f(lat_w[k:].T), "lv_b": f(lat_b[k:]),
            "dec_w": f(state["decoder.weight"].T), "dec_b": f(state["decoder.bias"]),
            "out_w": f(state["to_items.weight"].T), "out_b": f(state["to_items.bias"])}


def vae_initial_state(old_state: Mapping[str, np.ndarray], old_items: Sequence[str], new_items: Sequence[str],
                      fresh: Mapping[str, np.ndarray], neighbours: sp.spmatrix,
                      ) -> tuple[dict[str, np.ndarray], InitReport]:
    """A Mult-VAE state over ``new_items`` (see the module docstring); ``neighbours``: new items
    × new items (``co_occurrence``)."""
    ni, oi = match_rows(old_items, new_items)
    known = np.zeros(len(new_items), dtype=bool)
    known[ni] = True
    out = {k: np.array(v, copy=True) for k, v in fresh.items()}
    for name, value in old_state.items():
        if name not in ITEM_ROWS:
            if out[name].shape != np.shape(value):
                raise ValueError(f"{name}: old shape {np.shape(value)} is not {out[name].shape}")
            out[name] = np.array(value, dtype=out[name].dtype, copy=True)
    filled = known
    for name in ITEM_ROWS:
        rows = out[name].reshape(len(new_items), -1)
        rows[ni] = np.asarray(old_state[name]).reshape(len(old_items), -1)[oi]
        rows, filled = propagate_mean(rows, known, neighbours)
        out[name] = rows.reshape(out[name].shape).astype(out[name].dtype)
    return out, InitReport(int(known.sum()), int((filled & ~known).sum()), int((~filled).sum()))


def solve_rows(conf: sp.csr_matrix, fixed: np.ndarray, regularization: float, alpha: float,
               rows: np.ndarray | None = None) -> np.ndarray:
    """Implicit ALS's exact half-step for ``rows`` of ``conf`` (confidences before ``alpha``):
    ``x = (YᵀY + Yᵀ(C − I)Y + λI)⁻¹ YᵀC p`` with ``Y = fixed``; rows without entries stay 0."""
    y = np.asarray(fixed, dtype=np.float64)
    base = y.T @ y + regularization * np.eye(y.shape[1])
    rows = np.arange(conf.shape[0]) if rows is None else rows
    out = np.zeros((len(rows), y.shape[1]))
    for n, u in enumerate(rows.tolist()):
        a, b = conf.indptr[u], conf.indptr[u + 1]
        if a == b:
            continue
        yu = y[conf.indices[a:b]]
        cu = alpha * conf.data[a:b].astype(np.float64)
        out[n] = np.linalg.solve(base + (yu.T * (cu - 1.0)) @ yu, yu.T @ cu)
    return out


def als_initial_factors(old_users: Sequence[str], old_user_factors: np.ndarray, old_items: Sequence[str],
                        old_item_factors: np.ndarray, new_users: Sequence[str], new_items: Sequence[str],
                        conf: sp.csr_matrix, regularization: float, alpha: float,
                        ) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, int]]]:
    """(user factors, item factors), float32, to start implicit's ALS from on ``conf`` (new
    users × new items); see the module docstring."""
    k = old_item_factors.shape[1]
    ni, oi = match_rows(old_items, new_items)
    nu, ou = match_rows(old_users, new_users)
    items = np.zeros((len(new_items), k))
    items[ni] = old_item_factors[oi]
    users = np.zeros((len(new_users), k))
    users[nu] = old_user_factors[ou]
    known_items = np.zeros(len(new_items), dtype=bool)
    known_items[ni] = True
    conf = sp.csr_matrix(conf)
    new_users_rows = np.setdiff1d(np.arange(len(new_users)), nu)
    if len(new_users_rows) and known_items.any():
        users[new_users_rows] = solve_rows(sp.csr_matrix(conf[:, known_items]), items[known_items],
                                           regularization, alpha, new_users_rows)
    new_item_rows = np.flatnonzero(~known_items)
    by_item = sp.csr_matrix(conf.T)
    if len(new_item_rows):
        items[new_item_rows] = solve_rows(by_item, users, regularization, alpha, new_item_rows)
    users = solve_rows(conf, items, regularization, alpha)
    solved_items = int((np.diff(by_item.indptr)[new_item_rows] > 0).sum())
    solved_users = int((np.diff(conf.indptr)[new_users_rows] > 0).sum())
    report = {"users": InitReport(len(nu), solved_users, len(new_users_rows) - solved_users).as_dict(),
              "items": InitReport(len(ni), solved_items, len(new_item_rows) - solved_items).as_dict()}
    return users.astype(np.float32), items.astype(np.float32), report
