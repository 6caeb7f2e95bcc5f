"""The kgrec graph: schema, records, the GraphStore interface, its stores and snapshots."""
