"""PyKEEN interactions rewritten so one-against-many scoring is a matrix product.

PyKEEN's own DistMult, ComplEx and RotatE interactions multiply broadcast tensors
element-wise: scoring a batch of 1,024 (head, relation) pairs against 1,024 candidate
tails materialises a 1,024 x 1,024 x d tensor and runs at memory speed. The functions
are the same; only the order of operations changes:

- DistMult ``<h, r, t>`` and ComplEx ``Re<h, r, conj(t)>``: multiply the relation into
  the side with fewer rows, then one (real) ``einsum`` contraction, which torch lowers to
  a batched matrix product.
- RotatE ``-||h * r - t||``: rotate the side with fewer rows (``|h * r - t| = |h - t *
  conj(r)|`` because PyKEEN keeps ``|r| = 1``), then expand the squared distance as
  ``|a|^2 + |b|^2 - 2 Re<a, conj(b)>``.

The shared-negatives training loop (``embeddings.shared_negatives``) depends on this; the
tests check every shape PyKEEN calls with against PyKEEN's originals.
"""

from __future__ import annotations

from typing import Any

import torch
from pykeen.nn.modules import ComplExInteraction, DistMultInteraction, RotatEInteraction

#: Clamp before the square root: the expansion can dip below zero by rounding, and the
#: gradient of sqrt at exactly zero is infinite.
_MIN_SQUARED_DISTANCE = 1e-9


def _cost(a: torch.Tensor, b: torch.Tensor) -> int:
    """Elements of ``a * b`` once broadcast: the side to multiply the relation into."""
    return torch.broadcast_shapes(a.shape, b.shape).numel()


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...d,...d->...", a, b)


def _complex_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Re(sum(a * conj(b)))`` as two real contractions."""
    return _dot(a.real, b.real) + _dot(a.imag, b.imag)


def _squared_modulus(x: torch.Tensor) -> torch.Tensor:
    return (x.real.square() + x.imag.square()).sum(dim=-1)


class MatmulDistMult(DistMultInteraction):
    """DistMult, ``<h, r, t>``, contracted as a matrix product."""

    def forward(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if _cost(h, r) <= _cost(t, r):
            return _dot(h * r, t)
        return _dot(h, r * t)


class MatmulComplEx(ComplExInteraction):
    """ComplEx, ``Re<h, r, conj(t)>``, contracted as a matrix product."""

    def forward(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if _cost(h, r) <= _cost(t, r):
            return _complex_dot(h * r, t)
        # Re<h, r * conj(t)> = Re<h, conj(conj(r) * t)>
        return _complex_dot(h, torch.conj(r) * t)


class MatmulRotatE(RotatEInteraction):
    """RotatE, ``-||h * r - t||_2``, with the distance expanded into a matrix product."""

    def __init__(self, p: int = 2, power_norm: bool = False):
        if p != 2 or power_norm:
            raise ValueError("the matrix-product RotatE is the L2 distance only")
        super().__init__(p=p, power_norm=power_norm)

    def forward(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if _cost(h, r) <= _cost(t, r):
            h = h * r
        else:
            t = t * torch.conj(r)
        squared = _squared_modulus(h) + _squared_modulus(t) - 2 * _complex_dot(h, t)
        return -squared.clamp_min(_MIN_SQUARED_DISTANCE).sqrt()


MATMUL_INTERACTIONS: dict[str, type[torch.nn.Module]] = {
    "DistMult": MatmulDistMult,
    "ComplEx": MatmulComplEx,
    "RotatE": MatmulRotatE,
}


def use_matmul_interaction(model: Any, name: str) -> bool:
    """Swap a built PyKEEN model's interaction for its matrix-product twin, if there is one.

    Returns whether it did (TransE keeps PyKEEN's own: its L1 distance has no such form).
    """
    cls = MATMUL_INTERACTIONS.get(name)
    if cls is None:
        return False
    model.interaction = cls()
    return True
