"""kgrec: knowledge-graph recommendations with reasons you can replay in Cypher.

The repository's top-level folders are this package's sub-packages (``kgrec.graph``,
``kgrec.loaders``, ``kgrec.embeddings``, ``kgrec.recommenders``, ``kgrec.api``, ``kgrec.cli``);
``pyproject.toml`` maps them. Layers, lowest first: graph → embeddings → recommenders' models →
hybrid → bundle → serving, batch and tuning → api and cli (``docs/architecture.md``).
"""
