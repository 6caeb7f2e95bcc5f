"""The registry: recommender name -> class, and ``create(name, **config)``.

A recommender joins by adding one line here; the contract suite
(``tests/test_recommender_contract.py``) fails for any name it does not cover, and the
bundle finds classes here when it loads a saved model.
"""

from __future__ import annotations

from typing import Any

from recommenders.association import Association
from recommenders.base import Recommender
from recommenders.content import Content
from recommenders.ease import EASE
from recommenders.graph_walk import GraphWalk
from recommenders.hybrid import Hybrid
from recommenders.itemcf import ItemCF
from recommenders.kge import KGE
from recommenders.mf import ALS, BPR
from recommenders.multvae import MultVAE
from recommenders.popularity import Popularity
from recommenders.social import Social
from recommenders.usercf import UserCF

REGISTRY: dict[str, type[Recommender]] = {
    Popularity.name: Popularity,
    ItemCF.name: ItemCF,
    UserCF.name: UserCF,
    Content.name: Content,
    Association.name: Association,
    ALS.name: ALS,
    BPR.name: BPR,
    GraphWalk.name: GraphWalk,
    Social.name: Social,
    Hybrid.name: Hybrid,
    KGE.name: KGE,
    EASE.name: EASE,
    MultVAE.name: MultVAE,
}


def get(name: str) -> type[Recommender]:
    """The class registered under ``name``, or a ValueError naming the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown recommender {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None


def create(name: str, **config: Any) -> Recommender:
    """A new, unfitted recommender; keyword arguments override its Config defaults."""
    cls = get(name)
    config_cls = getattr(cls, "Config", None)
    if config_cls is None:
        return cls(**config)
    try:
        return cls(config_cls(**config))
    except TypeError as exc:
        raise ValueError(f"bad options for {name}: {exc}") from None
