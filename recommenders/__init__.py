"""Recommenders fitted on GraphSnapshots, behind one protocol (``recommenders.base``)."""
