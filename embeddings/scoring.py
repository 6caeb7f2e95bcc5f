"""The interaction functions of the supported PyKEEN models, in numpy.

Serving scores with these so the API process never imports torch. Each function takes
head, relation and tail vectors that broadcast against each other (one user against
every item: ``h`` (d,), ``r`` (d,), ``t`` (n, d)) and returns one score per row; each
mirrors PyKEEN's own interaction (the tests compare with ``model.score_hrt``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MODELS = ("TransE", "DistMult", "ComplEx", "RotatE")


def _negative_norm(x: np.ndarray, p: float, power_norm: bool) -> np.ndarray:
    if power_norm:
        return -(np.abs(x) ** p).sum(axis=-1)
    return -_row_norm(x, p)


def _row_norm(x: np.ndarray, p: float) -> np.ndarray:
    a = np.abs(x)
    if p == 2:
        return np.sqrt((a * a).sum(axis=-1))
    if p == 1:
        return a.sum(axis=-1)
    return (a**p).sum(axis=-1) ** (1.0 / p)


def transe(h: np.ndarray, r: np.ndarray, t: np.ndarray, p: float = 1, power_norm: bool = False) -> np.ndarray:
    """-||h + r - t||_p (or its p-th power)."""
    return _negative_norm(h + r - t, p, power_norm)


def distmult(h: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """<h, r, t> = sum(h * r * t)."""
    return (h * r * t).sum(axis=-1)


def complex_(h: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Re(<h, r, conj(t)>)."""
    return np.real((h * r * np.conj(t)).sum(axis=-1))


def rotate(h: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """-||h ∘ r - t||_2 over complex vectors (r on the unit circle)."""
    return -_row_norm(h * r - t, 2)


@dataclass(frozen=True)
class Interaction:
    """One model's interaction function with the parameters it was trained with."""

    model: str
    p: float = 1
    power_norm: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unsupported model {self.model!r}; expected one of {MODELS}")

    def function(self) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        if self.model == "TransE":
            return lambda h, r, t: transe(h, r, t, self.p, self.power_norm)
        return {"DistMult": distmult, "ComplEx": complex_, "RotatE": rotate}[self.model]

    def __call__(self, h: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.function()(h, r, t)

    def fold_in_target(self, r: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The head vector that best explains ``(?, r, t)`` for one tail, per row.

        Translational models have an exact least-squares head (t - r, t ∘ conj(r)); for
        the bilinear ones the score is linear in the head, so its best direction is the
        gradient (r * t, conj(r) * t). The caller averages these over a new user's edges.
        """
        if self.model == "TransE":
            return t - r
        if self.model == "RotatE":
            return t * np.conj(r)
        if self.model == "ComplEx":
            return np.conj(r) * t
        return r * t

    @property
    def translational(self) -> bool:
        return self.model in ("TransE", "RotatE")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "p": self.p, "power_norm": self.power_norm}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Interaction:
        return cls(str(d["model"]), float(d.get("p", 1)), bool(d.get("power_norm", False)))
