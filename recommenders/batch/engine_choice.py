"""The ``--engine`` names and their batch-engine classes.

It sits above both ``engines`` (the interface, ``LocalEngine``) and ``ray_engine``, so neither
of them needs to know the other; importing it does not import Ray (``ray_engine`` imports
Ray only when an engine starts).
"""

from __future__ import annotations

from kgrec.recommenders.batch.engines import BatchEngine, LocalEngine
from kgrec.recommenders.batch.ray_engine import RayEngine

#: ``--engine`` name -> the engine class.
ENGINES: dict[str, type[BatchEngine]] = {"local": LocalEngine, "ray": RayEngine}


def engine_class(name: str) -> type[BatchEngine]:
    """The class behind an ``--engine`` name; a ValueError naming the choices for any other."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}") from None
