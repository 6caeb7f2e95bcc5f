// name: taste_communities
// purpose: Friend groups with shared taste: each friendship's shared items vote for their most distinctive tag (count x IDF), friendships grouped by it.
// params: min_shared (int), k (int)
CALL () {
  MATCH (i:Item)
  RETURN count(i) AS n_items
}
MATCH (a:User)-[:FOLLOWS]->(b:User)
WHERE a.id < b.id OR NOT EXISTS { (b)-[:FOLLOWS]->(a) }
MATCH (a)-[:INTERACTED]->(i:Item)<-[:INTERACTED]-(b)
WITH n_items, a, b, collect(i) AS shared
WHERE size(shared) >= $min_shared
UNWIND shared AS i
MATCH (i)-[:HAS_TAG]->(t:Tag)
WITH n_items, a, b, t, count(i) AS n
WITH a, b, t, n * log(toFloat(n_items) / COUNT { (t)<-[:HAS_TAG]-(:Item) }) AS weight
ORDER BY weight DESC, t.id
WITH a, b, collect(t)[0] AS top
UNWIND [a.id, b.id] AS member
WITH top, a, b, member
ORDER BY member
WITH top, count(DISTINCT [a.id, b.id]) AS friendships, collect(DISTINCT member) AS members
RETURN top.id AS tag, top.name AS name, size(members) AS size, friendships, members
ORDER BY size DESC, friendships DESC, tag
LIMIT $k
