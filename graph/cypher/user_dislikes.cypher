// name: user_dislikes
// purpose: What a user said they do not want (negative feedback), newest first, and whether they had also played it.
// params: user (string), limit (int)
MATCH (u:User {id: $user})-[d:DISLIKED]->(i:Item)
RETURN i.id AS item, i.title AS title, d.ts AS ts, EXISTS { (u)-[:INTERACTED]->(i) } AS also_played,
       coalesce(i.hidden, false) AS hidden
ORDER BY ts DESC, item
LIMIT $limit
