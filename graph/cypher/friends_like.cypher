// name: friends_like
// purpose: Items the people a user follows interacted with that the user has not, by how many of them did.
// params: user (string), k (int)
MATCH (u:User {id: $user})-[:FOLLOWS]->(f:User)-[r:INTERACTED]->(i:Item)
WHERE NOT EXISTS { (u)-[:INTERACTED]->(i) }
WITH i, f, r
ORDER BY f.id
WITH i, count(f) AS friends, sum(r.weight) AS weight, collect(f.id) AS who
RETURN i.id AS item, i.title AS title, friends, weight, who
ORDER BY friends DESC, weight DESC, item
LIMIT $k
