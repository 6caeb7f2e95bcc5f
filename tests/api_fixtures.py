"""Shared setup of the API tests: a real bundle trained on the synthetic graph and a real
MemoryStore holding the same graph."""

from __future__ import annotations

from pathlib import Path

from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import GraphRecords
from kgrec.graph.snapshot import GraphSnapshot
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from kgrec.recommenders.registry import registry
from kgrec.recommenders.serving.server import Server
from kgrec.recommenders.serving.server_loading import load_server

API_KEY = "test-key-0123456789"
ANALYST_KEY = "analyst-key-0123456789"
#: The models the API tests serve: the walk, the neighbourhood and the last resort.
MODELS = [m for m in ("graph_walk", "itemcf", "popularity") if m in registry()]


def train_bundle(snapshot: GraphSnapshot, directory: Path) -> Path:
    return save_bundle(directory, snapshot, fit_models(snapshot, MODELS, seed=7))


def fill_store(records: GraphRecords, directory: Path) -> str:
    store = MemoryStore(directory)
    store.load(records)
    store.close()
    return f"memory://{directory}"


def fresh_server(bundle_dir: Path) -> Server:
    return load_server(bundle_dir, default_model="graph_walk")
