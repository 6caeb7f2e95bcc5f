"""The registry: recommender name -> class, and ``create(name, **config)``.

A leaf: it imports no model. Models register themselves with ``@register``; the first lookup
imports every module of the model packages (``MODEL_PACKAGES``), so a new recommender needs only
its own module there (and its line in ``tests/test_recommender_contract.py``, which fails for
any registered name it does not cover). The bundle finds classes here when it loads a model.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from kgrec.recommenders.base import FitCost, Recommender

#: Packages whose modules hold registered recommenders (their private ``_*`` modules are skipped).
MODEL_PACKAGES = ("kgrec.recommenders.models", "kgrec.recommenders.hybrid")

_REGISTRY: dict[str, type[Recommender]] = {}
_discovered = False
_lock = threading.Lock()
R = TypeVar("R", bound="type[Recommender]")


def register(name: str, *, fit_cost: FitCost, expensive: bool = False, default_rank: int | None = None,
             hybrid_rank: int | None = None) -> Callable[[R], R]:
    """Class decorator: set what tuning and training need to know on the class and add it under
    ``name`` (once). ``fit_cost``: the tuner's prediction of one fit (required, so a new model
    never silently gets a generic cost); ``expensive``: tuned only when asked; ``default_rank``
    / ``hybrid_rank``: its place among ``kgrec train``'s default models / the hybrid's default
    components (None: not one of them)."""

    def add(cls: R) -> R:
        if _REGISTRY.get(name, cls) is not cls:
            raise ValueError(f"recommender name {name!r} is registered twice")
        cls.name, cls.fit_cost, cls.expensive = name, fit_cost, expensive
        cls.default_rank, cls.hybrid_rank = default_rank, hybrid_rank
        cls.Config.model_name = name
        _REGISTRY[name] = cls
        return cls

    return add


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    with _lock:
        if _discovered:
            return
        for package in MODEL_PACKAGES:
            path = importlib.import_module(package).__path__
            for info in pkgutil.iter_modules(path):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{package}.{info.name}")
        _discovered = True


def registry() -> Mapping[str, type[Recommender]]:
    """Every registered recommender by name."""
    _discover()
    return dict(_REGISTRY)


def get(name: str) -> type[Recommender]:
    """The class registered under ``name``, or a ValueError naming the choices."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown recommender {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def create(name: str, **config: Any) -> Recommender:
    """A new, unfitted recommender; keyword arguments override its Config defaults. A bad value
    is a ``recommenders.config.ConfigError`` naming the option."""
    cls = get(name)
    return cls(cls.Config.build(**config))


def _ranked(rank: Callable[[type[Recommender]], int | None]) -> tuple[str, ...]:
    ranked = [(r, n) for n, c in registry().items() if (r := rank(c)) is not None]
    return tuple(n for _, n in sorted(ranked))


def default_models() -> tuple[str, ...]:
    """What ``kgrec train`` fits without ``--models``, best first (the fallback order)."""
    return _ranked(lambda c: c.default_rank)


def hybrid_components() -> tuple[str, ...]:
    """The hybrid's components unless its config names others."""
    return _ranked(lambda c: c.hybrid_rank)
