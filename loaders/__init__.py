"""Loaders: datasets -> validated records -> GraphStore."""
