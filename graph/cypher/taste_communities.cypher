// name: taste_communities
// purpose: Friend groups with shared taste: friendships whose shared items agree on a top tag, grouped by that tag.
// params: min_shared (int), k (int)
MATCH (a:User)-[:FOLLOWS]->(b:User)
WHERE a.id < b.id OR NOT EXISTS { (b)-[:FOLLOWS]->(a) }
MATCH (a)-[:INTERACTED]->(i:Item)<-[:INTERACTED]-(b)
WITH a, b, collect(i) AS shared
WHERE size(shared) >= $min_shared
UNWIND shared AS i
MATCH (i)-[:HAS_TAG]->(t:Tag)
WITH a, b, t, count(i) AS n
ORDER BY n DESC, t.id
WITH a, b, collect(t)[0] AS top
UNWIND [a.id, b.id] AS member
WITH top, a, b, member
ORDER BY member
WITH top, count(DISTINCT [a.id, b.id]) AS friendships, collect(DISTINCT member) AS members
RETURN top.id AS tag, top.name AS name, size(members) AS size, friendships, members
ORDER BY size DESC, friendships DESC, tag
LIMIT $k
