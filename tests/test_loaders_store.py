"""Loaders into real stores: idempotence, an interrupted load rerun, and the same graph in
MemoryStore and (marker ``neo4j``) Neo4j."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store_factory import open_store
from kgrec.loaders import csv_dir, lastfm
from kgrec.loaders.ingest import write_records
from kgrec.loaders.synthetic import SyntheticGraph
from tests.test_loaders_datasets import make_lastfm
from tests.test_loaders_validation import make_csv_dir


def _head(records: GraphRecords, fraction: float) -> GraphRecords:
    """The first part of every record list: what a load killed midway had written."""
    return GraphRecords(**{k: getattr(records, k)[: int(len(getattr(records, k)) * fraction)] for k in COUNT_KEYS})


def test_interrupted_load_rerun_gives_the_same_graph(tmp_path: Path, synthetic: SyntheticGraph) -> None:
    records = synthetic.records
    with open_store(f"memory://{tmp_path / 'clean'}") as clean:
        write_records(clean, records, batch=97)
        expected = clean.snapshot()
    with open_store(f"memory://{tmp_path / 'broken'}") as broken:
        write_records(broken, _head(records, 0.4), batch=97)
    with open_store(f"memory://{tmp_path / 'broken'}") as rerun:  # a new process picks up what was flushed
        assert 0 < rerun.counts()["interactions"] < len(records.interactions)
        write_records(rerun, records, batch=97)
        assert rerun.snapshot().fingerprint == expected.fingerprint


def test_loading_twice_changes_nothing(tmp_path: Path) -> None:
    loaded = lastfm.load(make_lastfm(tmp_path / "lfm"))
    with open_store(f"memory://{tmp_path / 'g'}") as store:
        first = write_records(store, loaded.records)
        counts, fp = store.counts(), store.snapshot().fingerprint
        write_records(store, loaded.records)
        assert store.counts() == counts
        assert store.snapshot().fingerprint == fp
    assert first["taggings"] == len(loaded.records.taggings)
    assert counts["items"] == 3 and counts["follows"] == 2


@pytest.mark.neo4j
def test_same_graph_in_both_stores(tmp_path: Path, neo4j_uri: str) -> None:
    loaded = csv_dir.load(make_csv_dir(tmp_path / "csv", bad=True), symmetric=True)
    with open_store(f"memory://{tmp_path / 'g'}") as mem:
        write_records(mem, loaded.records)
        want_counts, want_fp = mem.counts(), mem.snapshot().fingerprint
    with open_store(neo4j_uri) as neo:
        neo.clear()
        write_records(neo, loaded.records, batch=3)
        write_records(neo, loaded.records, batch=3)
        assert neo.counts() == want_counts
        assert neo.snapshot().fingerprint == want_fp
        neo.clear()
