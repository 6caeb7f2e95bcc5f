"""Knowledge-graph embeddings: snapshot triples, PyKEEN training, torch-free artifacts and scoring."""
