"""The Cypher of whole-graph loads (``graph.neo4j_bulk``): CREATE for an empty database, MERGE otherwise.

Kept apart from ``graph.neo4j_cypher`` (the per-call statements of ``Neo4jStore``) because
these take ``graph.bulk`` rows, positional lists, instead of named fields. The same rule
holds: labels and types come only from the ``graph.schema`` enums, values only as ``$rows``.
"""

from __future__ import annotations

from kgrec.graph.schema import Label, Rel

# Rows are graph.bulk net rows. Nodes come first and return their element ids; relationship
# rows then carry [start element id, end element id, properties...] and find their ends by id
# (measured ~35% less server CPU per relationship than two unique-index lookups, which take
# index-entry locks), with the labels checked so an id can never bind a node of another kind.
# Each statement returns how many rows it wrote, and a batch that wrote fewer is refused.

CREATE_NODES: dict[Label, str] = {
    Label.USER: "UNWIND $rows AS p CREATE (n:User) SET n = p"
    " RETURN collect(n.id) AS keys, collect(elementId(n)) AS ids",
    # location comes as [lat, lon] and is stored as a WGS-84 point (graph.schema.LOCATION)
    Label.ITEM: "UNWIND $rows AS p CREATE (n:Item) SET n = p {.*, location: null}"
    " SET n.location = CASE WHEN p.location IS NULL THEN null"
    " ELSE point({latitude: p.location[0], longitude: p.location[1]}) END"
    " RETURN collect(n.id) AS keys, collect(elementId(n)) AS ids",
    Label.TAG: "UNWIND $rows AS p CREATE (n:Tag) SET n = p"
    " RETURN collect(n.id) AS keys, collect(elementId(n)) AS ids",
    Label.ENTITY: "UNWIND $rows AS p CREATE (n:Entity) SET n = p"
    " RETURN collect(n.iri) AS keys, collect(elementId(n)) AS ids",
    Label.ATTRIBUTE: "UNWIND $rows AS p CREATE (n:Attribute) SET n = p"
    " RETURN collect(n.id) AS keys, collect(elementId(n)) AS ids",
}

# Merge-mode node rows are graph.rows shapes with attributes already prefixed (attr_*); the
# semantics are those of the per-call upserts in graph.neo4j_cypher (a user's HAS_ATTRIBUTE links
# go with its old attributes, and if it had any its rev moves).
UPSERT_NODE_ROWS: dict[Label, str] = {
    Label.USER: """
UNWIND $rows AS row
MERGE (n:User {id: row[0]})
WITH n, row, [k IN keys(n) WHERE k STARTS WITH 'attr_' AND NOT k IN keys(row[1])] AS stale
FOREACH (k IN stale | SET n[k] = null)
SET n += row[1]
WITH n, row, COLLECT { MATCH (n)-[r:HAS_ATTRIBUTE]->() RETURN r } AS links
FOREACH (r IN links | DELETE r)
FOREACH (_ IN CASE WHEN size(links) > 0 THEN [1] ELSE [] END | SET n.rev = randomUUID())
RETURN collect(row[0]) AS keys, collect(elementId(n)) AS ids
""",
    Label.ITEM: """
UNWIND $rows AS row
MERGE (n:Item {id: row[0]})
WITH n, row, [k IN keys(n) WHERE k STARTS WITH 'attr_' AND NOT k IN keys(row[2])] AS stale
FOREACH (k IN stale | SET n[k] = null)
SET n += row[2], n.title = row[1],
    n.location = CASE WHEN row[3] IS NULL THEN null ELSE point({latitude: row[3][0], longitude: row[3][1]}) END
RETURN collect(row[0]) AS keys, collect(elementId(n)) AS ids
""",
    Label.TAG: """
UNWIND $rows AS row
MERGE (n:Tag {id: row[0]})
SET n.name = coalesce(row[1], n.name), n.kind = coalesce(row[2], n.kind)
RETURN collect(row[0]) AS keys, collect(elementId(n)) AS ids
""",
    Label.ENTITY: """
UNWIND $rows AS row
MERGE (n:Entity {iri: row[0]})
SET n.label = coalesce(row[1], n.label)
RETURN collect(row[0]) AS keys, collect(elementId(n)) AS ids
""",
    Label.ATTRIBUTE: """
UNWIND $rows AS row
MERGE (n:Attribute {id: row[0]})
SET n.kind = coalesce(row[1], n.kind), n.value = coalesce(row[2], n.value), n.name = coalesce(row[3], n.name)
RETURN collect(row[0]) AS keys, collect(elementId(n)) AS ids
""",
}

_BY_IDS = """
UNWIND $rows AS row
MATCH (a) WHERE elementId(a) = row[0]
MATCH (b) WHERE elementId(b) = row[1]
"""

CREATE_RELS: dict[Rel, str] = {
    Rel.INTERACTED: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Item
CREATE (a)-[:INTERACTED {weight: row[2], rating: row[3], ts: row[4]}]->(b)
RETURN count(*) AS written
""",
    Rel.TAGGED: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Item
CREATE (a)-[:TAGGED {tag: row[2], ts: row[3]}]->(b)
RETURN count(*) AS written
""",
    Rel.HAS_TAG: _BY_IDS + """WITH a, b, row WHERE a:Item AND b:Tag
CREATE (a)-[:HAS_TAG {count: row[2]}]->(b)
RETURN count(*) AS written
""",
    Rel.FOLLOWS: _BY_IDS + """WITH a, b, row WHERE a:User AND b:User
CREATE (a)-[:FOLLOWS {weight: row[2]}]->(b)
RETURN count(*) AS written
""",
    Rel.RELATED: _BY_IDS + """WITH a, b, row WHERE a:Item AND b:Entity
CREATE (a)-[:RELATED {predicate: row[2]}]->(b)
RETURN count(*) AS written
""",
    Rel.DISLIKED: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Item
CREATE (a)-[:DISLIKED {ts: row[2]}]->(b)
RETURN count(*) AS written
""",
    Rel.HAS_ATTRIBUTE: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Attribute
CREATE (a)-[:HAS_ATTRIBUTE]->(b)
RETURN count(*) AS written
""",
}

MERGE_RELS: dict[Rel, str] = {
    Rel.INTERACTED: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Item
MERGE (a)-[r:INTERACTED]->(b)
SET r.weight = row[2], r.rating = row[3], r.ts = row[4]
RETURN count(*) AS written
""",
    Rel.TAGGED: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Item
MERGE (a)-[r:TAGGED {tag: row[2]}]->(b)
SET r.ts = row[3]
RETURN count(*) AS written
""",
    Rel.HAS_TAG: _BY_IDS + """WITH a, b, row WHERE a:Item AND b:Tag
MERGE (a)-[r:HAS_TAG]->(b)
SET r.count = row[2]
RETURN count(*) AS written
""",
    Rel.FOLLOWS: _BY_IDS + """WITH a, b, row WHERE a:User AND b:User
MERGE (a)-[r:FOLLOWS]->(b)
SET r.weight = row[2]
RETURN count(*) AS written
""",
    Rel.RELATED: _BY_IDS + """WITH a, b, row WHERE a:Item AND b:Entity
MERGE (a)-[:RELATED {predicate: row[2]}]->(b)
RETURN count(*) AS written
""",
    Rel.DISLIKED: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Item
MERGE (a)-[r:DISLIKED]->(b)
SET r.ts = row[2]
RETURN count(*) AS written
""",
    Rel.HAS_ATTRIBUTE: _BY_IDS + """WITH a, b, row WHERE a:User AND b:Attribute
MERGE (a)-[:HAS_ATTRIBUTE]->(b)
RETURN count(*) AS written
""",
}
