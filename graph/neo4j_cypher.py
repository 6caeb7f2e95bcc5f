"""Every Cypher statement Neo4jStore runs, as constant strings.

Labels and relationship types are written into the text here and nowhere else: where one
varies, the statement is picked from a dict keyed by the ``graph.schema`` enum, so no query is
ever assembled from input. Values always travel as ``$parameters``.
"""

from __future__ import annotations

from kgrec.graph.schema import KEY, Label, Rel

# -- schema ------------------------------------------------------------------------------------
CONSTRAINTS = (
    "CREATE CONSTRAINT kgrec_user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgrec_item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgrec_tag_id IF NOT EXISTS FOR (n:Tag) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgrec_entity_iri IF NOT EXISTS FOR (n:Entity) REQUIRE n.iri IS UNIQUE",
    "CREATE CONSTRAINT kgrec_attribute_id IF NOT EXISTS FOR (n:Attribute) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgrec_state_id IF NOT EXISTS FOR (n:KgrecState) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgrec_impression_id IF NOT EXISTS FOR (n:Impression) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX kgrec_impression_at IF NOT EXISTS FOR (n:Impression) ON (n.at)",
    "CREATE INDEX kgrec_item_hidden IF NOT EXISTS FOR (n:Item) ON (n.hidden)",
    # point.distance / point.withinBBox on Item.location use it (graph.schema.LOCATION)
    "CREATE POINT INDEX kgrec_item_location IF NOT EXISTS FOR (n:Item) ON (n.location)",
)

# -- writes ------------------------------------------------------------------------------------
# Attributes are replaced as a whole (as MemoryStore does): stale attr_* keys are removed,
# every other property (title, written-back embeddings) is left alone. A user's HAS_ATTRIBUTE
# links go with its old attributes, and if it had any its rev moves (servers re-read its feedback).
UPSERT_USERS = """
UNWIND $rows AS row
MERGE (n:User {id: row.id})
WITH n, row, [k IN keys(n) WHERE k STARTS WITH 'attr_' AND NOT k IN keys(row.attrs)] AS stale
FOREACH (k IN stale | SET n[k] = null)
SET n += row.attrs
WITH n, COLLECT { MATCH (n)-[r:HAS_ATTRIBUTE]->() RETURN r } AS links
FOREACH (r IN links | DELETE r)
FOREACH (_ IN CASE WHEN size(links) > 0 THEN [1] ELSE [] END | SET n.rev = randomUUID())
"""

UPSERT_ITEMS = """
UNWIND $rows AS row
MERGE (n:Item {id: row.id})
WITH n, row, [k IN keys(n) WHERE k STARTS WITH 'attr_' AND NOT k IN keys(row.attrs)] AS stale
FOREACH (k IN stale | SET n[k] = null)
SET n += row.attrs, n.title = row.title,
    n.location = CASE WHEN row.location IS NULL THEN null
                      ELSE point({latitude: row.location[0], longitude: row.location[1]}) END
"""

UPSERT_ATTRIBUTES = """
UNWIND $rows AS row
MERGE (n:Attribute {id: row.id})
SET n.kind = coalesce(row.kind, n.kind), n.value = coalesce(row.value, n.value), n.name = coalesce(row.name, n.name)
"""

UPSERT_TAGS = """
UNWIND $rows AS row
MERGE (n:Tag {id: row.id})
SET n.name = coalesce(row.name, n.name), n.kind = coalesce(row.kind, n.kind)
"""

# Relationship upserts: each batch first MERGEs its distinct end nodes (a few thousand keys),
# then MATCHes them per row. Measured ~1.9x faster than MERGE of both nodes on every row.
# Bulk loads read the returned element ids (two lists collected together, hence aligned).
MERGE_NODES: dict[Label, str] = {
    Label.USER: "UNWIND $ids AS key MERGE (n:User {id: key}) RETURN collect(key) AS keys, collect(elementId(n)) AS ids",
    Label.ITEM: "UNWIND $ids AS key MERGE (n:Item {id: key}) RETURN collect(key) AS keys, collect(elementId(n)) AS ids",
    Label.TAG: "UNWIND $ids AS key MERGE (n:Tag {id: key}) RETURN collect(key) AS keys, collect(elementId(n)) AS ids",
    Label.ENTITY: (
        "UNWIND $ids AS key MERGE (n:Entity {iri: key}) RETURN collect(key) AS keys, collect(elementId(n)) AS ids"
    ),
    Label.ATTRIBUTE: (
        "UNWIND $ids AS key MERGE (n:Attribute {id: key}) RETURN collect(key) AS keys, collect(elementId(n)) AS ids"
    ),
}

# Writes that change a user's INTERACTED or DISLIKED relationships give the user a new random
# ``rev`` in the same transaction (random, so concurrent writers can never land on one value):
# a server that cached the user's feedback under the old value knows to read it again.
TOUCH_USERS = "UNWIND $ids AS key MERGE (u:User {id: key}) SET u.rev = randomUUID()"

UPSERT_INTERACTIONS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})
MATCH (i:Item {id: row.item})
MERGE (u)-[r:INTERACTED]->(i)
SET r.weight = row.weight, r.rating = row.rating, r.ts = row.ts
"""

UPSERT_TAGGINGS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})
MATCH (i:Item {id: row.item})
MERGE (u)-[r:TAGGED {tag: row.tag}]->(i)
SET r.ts = row.ts
"""

UPSERT_ITEM_TAGS = """
UNWIND $rows AS row
MATCH (i:Item {id: row.item})
MATCH (t:Tag {id: row.tag})
MERGE (i)-[r:HAS_TAG]->(t)
SET r.count = row.count
"""

UPSERT_FOLLOWS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})
MATCH (f:User {id: row.friend})
MERGE (u)-[r:FOLLOWS]->(f)
SET r.weight = row.weight
"""

# An entity keeps the label it has when a fact brings none (as MemoryStore does).
UPSERT_FACTS = """
UNWIND $rows AS row
MATCH (i:Item {id: row.item})
MATCH (e:Entity {iri: row.entity})
SET e.label = coalesce(row.label, e.label)
MERGE (i)-[:RELATED {predicate: row.predicate}]->(e)
"""

UPSERT_USER_ATTRIBUTES = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})
MATCH (a:Attribute {id: row.attribute})
MERGE (u)-[:HAS_ATTRIBUTE]->(a)
"""

UPSERT_DISLIKES = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})
MATCH (i:Item {id: row.item})
MERGE (u)-[r:DISLIKED]->(i)
SET r.ts = row.ts
"""

# Hidden flags: a missing item is skipped (counted out of ``found``); the state node gets a
# new random ``hidden_rev`` so every server re-reads the hidden set at its next request.
SET_HIDDEN = """
UNWIND $ids AS key
OPTIONAL MATCH (n:Item {id: key})
SET n.hidden = CASE WHEN $hidden THEN true ELSE null END
WITH count(n) AS found
MERGE (s:KgrecState {id: $state})
SET s.hidden_rev = randomUUID()
RETURN found
"""

DELETE_NODES: dict[Label, str] = {
    Label.USER: """
UNWIND $ids AS key
MATCH (n:User {id: key})
DETACH DELETE n
RETURN count(*) AS deleted
""",
    # Deleting a hidden item changes the hidden set: the state node gets a new hidden_rev.
    Label.ITEM: """
UNWIND $ids AS key
MATCH (n:Item {id: key})
WITH collect(n) AS nodes, sum(CASE WHEN n.hidden THEN 1 ELSE 0 END) AS hidden
FOREACH (n IN nodes | DETACH DELETE n)
FOREACH (_ IN CASE WHEN hidden > 0 THEN [1] ELSE [] END |
  MERGE (s:KgrecState {id: $state}) SET s.hidden_rev = randomUUID())
RETURN size(nodes) AS deleted
""",
}

DELETE_INTERACTIONS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})-[r:INTERACTED]->(:Item {id: row.item})
DELETE r
SET u.rev = randomUUID()
RETURN count(*) AS deleted
"""

DELETE_DISLIKES = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})-[r:DISLIKED]->(:Item {id: row.item})
DELETE r
SET u.rev = randomUUID()
RETURN count(*) AS deleted
"""

CLEAR_RELATIONSHIPS = """
MATCH ()-[r]->()
WITH r LIMIT $batch
DELETE r
RETURN count(*) AS deleted
"""

CLEAR_NODES = """
MATCH (n)
WITH n LIMIT $batch
DETACH DELETE n
RETURN count(*) AS deleted
"""

# -- reads -------------------------------------------------------------------------------------
# Whether a load may take the create path (graph.store.GraphStore.load_mode).
IS_EMPTY = "MATCH (n) RETURN count(n) = 0 AS empty"

COUNTS = """
CALL () { MATCH (n:User) RETURN count(n) AS users }
CALL () { MATCH (n:Item) RETURN count(n) AS items }
CALL () { MATCH (n:Tag) RETURN count(n) AS tags }
CALL () { MATCH ()-[r:INTERACTED]->() RETURN count(r) AS interactions }
CALL () { MATCH ()-[r:TAGGED]->() RETURN count(r) AS taggings }
CALL () { MATCH ()-[r:HAS_TAG]->() RETURN count(r) AS item_tags }
CALL () { MATCH ()-[r:FOLLOWS]->() RETURN count(r) AS follows }
CALL () { MATCH ()-[r:RELATED]->() RETURN count(r) AS facts }
CALL () { MATCH ()-[r:DISLIKED]->() RETURN count(r) AS dislikes }
CALL () { MATCH (n:Attribute) RETURN count(n) AS attributes }
CALL () { MATCH ()-[r:HAS_ATTRIBUTE]->() RETURN count(r) AS has_attribute }
RETURN users, items, tags, attributes, interactions, taggings, item_tags, follows, facts, dislikes, has_attribute
"""

# What a server reads on every request: one user's feedback and the hidden items, each part
# shipped only when its token differs from the caller's. The tokens are read before the data,
# so a write committing in between leaves newer data under an older token (re-read next time),
# never the reverse. Degrees join ``rev`` in the user token because a deleted item (or
# Attribute node) removes relationships of users whose ``rev`` it does not touch.
FEEDBACK = """
OPTIONAL MATCH (u:User {id: $user})
OPTIONAL MATCH (s:KgrecState {id: $state})
WITH u, [coalesce(u.rev, ''), COUNT { (u)-[:INTERACTED]->() }, COUNT { (u)-[:DISLIKED]->() },
         COUNT { (u)-[:HAS_ATTRIBUTE]->() }] AS user_token,
     [coalesce(u.rev, ''), COUNT { (u)-[:SAW]->() }] AS impressions_token,
     coalesce(s.hidden_rev, '') AS hidden_token
RETURN u IS NOT NULL AS known, user_token, hidden_token, impressions_token,
       CASE WHEN user_token = $user_token THEN null
            ELSE COLLECT { MATCH (u)-[r:INTERACTED]->(i:Item) RETURN [i.id, r.weight] } END AS interacted,
       CASE WHEN user_token = $user_token THEN null
            ELSE COLLECT { MATCH (u)-[:DISLIKED]->(i:Item) RETURN i.id } END AS disliked,
       CASE WHEN user_token = $user_token THEN null
            ELSE COLLECT { MATCH (u)-[:HAS_ATTRIBUTE]->(a:Attribute) RETURN a.id } END AS attributes,
       CASE WHEN impressions_token = $impressions_token THEN null
            ELSE COLLECT { MATCH (u)-[:SAW]->(m:Impression)
                           RETURN [m.item, m.chosen_at IS NULL AND m.disliked_at IS NULL] } END AS impressions,
       CASE WHEN hidden_token = $hidden_token THEN null
            ELSE COLLECT { MATCH (h:Item) WHERE h.hidden = true RETURN h.id } END AS hidden
"""

GET_NODE: dict[Label, str] = {
    Label.USER: "MATCH (n:User {id: $key}) RETURN properties(n) AS props",
    Label.ITEM: "MATCH (n:Item {id: $key}) RETURN properties(n) AS props",
    Label.TAG: "MATCH (n:Tag {id: $key}) RETURN properties(n) AS props",
    Label.ENTITY: "MATCH (n:Entity {iri: $key}) RETURN properties(n) AS props",
    Label.ATTRIBUTE: "MATCH (n:Attribute {id: $key}) RETURN properties(n) AS props",
}

# Two directed halves (UNION ALL) so that a self-loop appears once in each direction, as in
# MemoryStore. ``m`` carries only the key and name properties, never written-back vectors.
# ``{label}`` and ``{key}`` are the only holes, filled from ``graph.schema`` alone (braces that
# are Cypher are doubled); everything that comes from a caller is a ``$parameter``.
_NEIGHBORS_TEMPLATE = """
MATCH (n:{label} {{{key}: $key}})-[r]->(m) WHERE $rels IS NULL OR type(r) IN $rels
RETURN type(r) AS rel, true AS outgoing, labels(m) AS labels,
       m {{.id, .iri, .attr_name, .title, .name, .label}} AS m, properties(r) AS props
UNION ALL
MATCH (n:{label} {{{key}: $key}})<-[r]-(m) WHERE $rels IS NULL OR type(r) IN $rels
RETURN type(r) AS rel, false AS outgoing, labels(m) AS labels,
       m {{.id, .iri, .attr_name, .title, .name, .label}} AS m, properties(r) AS props
"""


def _neighbors_queries() -> dict[Label, str]:
    """The NEIGHBORS query of every graph label (the state node has no neighbours to show)."""
    return {lab: _NEIGHBORS_TEMPLATE.format(label=lab.value, key=KEY[lab]) for lab in Label if lab is not Label.STATE}


#: Built once; a label outside the set (the state node) is a KeyError, never a query.
NEIGHBORS: dict[Label, str] = _neighbors_queries()


#: One query per type; the end labels are the type's ``ENDPOINTS``.
HAS_RELATIONSHIP: dict[Rel, str] = {
    Rel.INTERACTED: "MATCH (:User {id: $src})-[r:INTERACTED]->(:Item {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.TAGGED: "MATCH (:User {id: $src})-[r:TAGGED]->(:Item {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.HAS_TAG: "MATCH (:Item {id: $src})-[r:HAS_TAG]->(:Tag {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.FOLLOWS: "MATCH (:User {id: $src})-[r:FOLLOWS]->(:User {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.RELATED: "MATCH (:Item {id: $src})-[r:RELATED]->(:Entity {iri: $dst}) RETURN count(r) > 0 AS found",
    Rel.RECOMMENDED: "MATCH (:User {id: $src})-[r:RECOMMENDED]->(:Item {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.DISLIKED: "MATCH (:User {id: $src})-[r:DISLIKED]->(:Item {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.HAS_ATTRIBUTE: (
        "MATCH (:User {id: $src})-[r:HAS_ATTRIBUTE]->(:Attribute {id: $dst}) RETURN count(r) > 0 AS found"
    ),
    Rel.SAW: "MATCH (:User {id: $src})-[r:SAW]->(:Impression {id: $dst}) RETURN count(r) > 0 AS found",
    Rel.SHOWS: "MATCH (:Impression {id: $src})-[r:SHOWS]->(:Item {id: $dst}) RETURN count(r) > 0 AS found",
}

ATTRIBUTES = "MATCH (n:Attribute) RETURN collect([n.id, n.kind, n.value, n.name]) AS rows"

# Candidates for GraphStore.items_within: the point index finds the items within $metres on
# Neo4j's sphere (a radius graph.geo.neo4j_metres widens slightly); graph.geo then applies the
# exact rule to their coordinates, so both stores answer alike.
ITEMS_NEAR = """
MATCH (i:Item)
WHERE point.distance(i.location, point({latitude: $lat, longitude: $lon})) <= $metres
RETURN collect(i.id) AS id, collect(i.location.latitude) AS lat, collect(i.location.longitude) AS lon
"""


# -- impressions (graph.impressions, graph.neo4j_impressions) ----------------------------------
# A served list's impressions: each MERGEd on its id and given its properties only when created,
# so a retried or repeated batch writes every impression once. The users' SAW degree is part of
# their FEEDBACK token, so a server re-reads their shown items at its next request.
LOG_IMPRESSIONS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user})
MATCH (i:Item {id: row.item})
MERGE (m:Impression {id: row.id})
ON CREATE SET m += row.props
MERGE (u)-[:SAW]->(m)
MERGE (m)-[:SHOWS]->(i)
"""

# Feedback naming an impression: each kind is set once (the first time stands); the user's rev
# moves so servers re-read which items they skipped.
RECORD_OUTCOMES = """
UNWIND $rows AS row
MATCH (u:User)-[:SAW]->(m:Impression {id: row.impression})
WITH u, m, row, CASE row.kind WHEN 'chosen' THEN m.chosen_at ELSE m.disliked_at END AS before
WHERE before IS NULL
SET m.chosen_at = CASE row.kind WHEN 'chosen' THEN row.at ELSE m.chosen_at END,
    m.disliked_at = CASE row.kind WHEN 'disliked' THEN row.at ELSE m.disliked_at END,
    u.rev = randomUUID()
RETURN count(*) AS marked
"""

GET_IMPRESSIONS = "UNWIND $ids AS key MATCH (m:Impression {id: key}) RETURN properties(m) AS p"

LOGGED_IMPRESSIONS = """
MATCH (m:Impression)
WHERE ($since IS NULL OR m.at >= $since) AND ($until IS NULL OR m.at < $until)
RETURN properties(m) AS p
ORDER BY m.at, m.request, m.position
"""

IMPRESSION_COUNT = "MATCH (m:Impression) RETURN count(m) AS n"
