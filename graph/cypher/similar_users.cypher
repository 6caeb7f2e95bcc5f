// name: similar_users
// purpose: Users whose histories overlap most with a user's (Jaccard of interacted items), and whether the user follows them.
// params: user (string), k (int)
MATCH (u:User {id: $user})
WITH u, COUNT { (u)-[:INTERACTED]->(:Item) } AS n_u
MATCH (u)-[:INTERACTED]->(i:Item)<-[:INTERACTED]-(v:User)
WHERE v <> u
WITH u, v, n_u, count(i) AS shared
WITH u, v, shared, n_u + COUNT { (v)-[:INTERACTED]->(:Item) } - shared AS n_union
RETURN v.id AS user, shared, toFloat(shared) / n_union AS jaccard, EXISTS { (u)-[:FOLLOWS]->(v) } AS follows
ORDER BY jaccard DESC, shared DESC, user
LIMIT $k
