"""What the read path returns, and its JSON: the same shape from ``kgrec recommend`` and the API."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kgrec.recommenders.base import Reason


@dataclass(frozen=True)
class Served:
    """One recommended (or similar) item as served: its rank, and the source that produced it."""

    item: str
    title: str | None
    score: float
    rank: int
    source: str
    reasons: tuple[Reason, ...] | None = None
    reasons_omitted: int = 0
    omitted_contribution: float = 0.0
    #: The probability with which the serving policy put the item at this rank given the items
    #: above it (``recommenders.serving.policies``); None for lists no policy drew (similar items).
    propensity: float | None = None
    #: Not the policy's greedy choice: shown to learn (``exploration`` says what it probes).
    explored: bool = False
    exploration: str | None = None
    #: The logged impression feedback may name (``graph.impressions``), when the list was logged.
    impression_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"item": self.item, "title": self.title, "score": finite(self.score),
                             "rank": self.rank, "source": self.source}
        if self.propensity is not None:
            d["propensity"] = self.propensity
        if self.explored:
            d["explored"] = True
            d["exploration"] = self.exploration
        if self.impression_id is not None:
            d["impression_id"] = self.impression_id
        if self.reasons is not None:
            d["reasons"] = [reason_json(r) for r in self.reasons]
            d["reasons_omitted"] = self.reasons_omitted
            d["omitted_contribution"] = finite(self.omitted_contribution)
        return d


def reason_json(r: Reason) -> dict[str, Any]:
    """``Reason.to_dict`` without ``dataclasses.asdict``'s deep copies (a hot path when serving)."""
    return {
        "nodes": [{"label": n.label.value, "id": n.id, "name": n.name} for n in r.nodes],
        "rels": [{"type": x.type.value, "forward": x.forward} for x in r.rels],
        "contribution": finite(r.contribution), "text": r.text, "cypher": r.cypher,
        "params": dict(r.params), "kind": r.kind,
    }


def finite(x: float) -> float:
    """JSON has no NaN or infinity: such a score is reported as 0."""
    x = float(x)
    return x if math.isfinite(x) else 0.0
