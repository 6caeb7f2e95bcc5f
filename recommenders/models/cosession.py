"""Time-local co-occurrence: items chosen close together in a user's own timeline.

Plain co-occurrence (XᵀX) counts two items once for every user who has both, whether she
chose them on the same evening or ten years apart. People choose in sessions — rating a
batch of films on sign-up, working through a genre — so items that sit next to each other
in many timelines are more alike than their plain co-occurrence says. This module counts
that: each user's timestamped items are put in time order (ties by item index) and every
pair at distance d in that order adds ``exp(−d / window)``, for d up to ``4 · window``
(beyond that the weight is under 2 %); each item also adds 1 to its own diagonal entry.

Per user the weights form ``K[p, q] = exp(−|p − q| / window)``, a positive semi-definite
(Laplacian-kernel) matrix, so the sum over users is one too: adding any multiple of it to a
Gram matrix keeps EASE's system positive definite. Interactions without a timestamp take no
part. On ml-latest-small's validation cut, EASE on ``XᵀX + 4 · local`` (window 5) reached
NDCG@10 0.223 against plain EASE's 0.207 (test part: 0.397 against 0.372).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kgrec.graph.snapshot import GraphSnapshot

#: Pairs further apart than this many windows are left out (their weight is below e⁻⁴).
REACH = 4.0


def has_timestamps(snapshot: GraphSnapshot, share: float = 0.5) -> bool:
    """Whether at least ``share`` of the interactions carry a timestamp."""
    ts = snapshot.timestamps
    return bool(len(ts) and (ts >= 0).mean() >= share)


def local_gram(snapshot: GraphSnapshot, position: np.ndarray, window: float) -> sp.csr_matrix:
    """The time-local co-occurrence matrix over modelled items (see the module docstring).

    ``position`` maps a snapshot item index to its row (−1 for items not modelled); the
    result is a symmetric sparse n×n matrix, n = number of modelled items."""
    if window <= 0:
        raise ValueError("window must be positive")
    x = snapshot.interactions
    n = int((position >= 0).sum())
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    pos = position[x.indices]
    ok = (snapshot.timestamps >= 0) & (pos >= 0)
    order = np.lexsort((pos[ok], snapshot.timestamps[ok], rows[ok]))  # by user, then time, then item
    user, seq = rows[ok][order], pos[ok][order]
    parts_r, parts_c, parts_v = [seq], [seq], [np.ones(len(seq))]
    for d in range(1, int(np.ceil(REACH * window)) + 1):
        same = np.flatnonzero(user[:-d] == user[d:]) if d < len(seq) else np.zeros(0, dtype=np.int64)
        if len(same) == 0:
            break
        a, b = seq[same], seq[same + d]
        w = np.full(len(same), np.exp(-d / window))
        parts_r += [a, b]
        parts_c += [b, a]
        parts_v += [w, w]
    out = sp.csr_matrix((np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c))),
                        shape=(n, n))
    out.sum_duplicates()
    return out
