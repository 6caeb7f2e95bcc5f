// name: friends_near_me
// purpose: Places within a radius of somewhere a user checked in that their friends (FOLLOWS either way) visited and the user has not, by how many friends did.
// params: user (string), radius_km (float), k (int)
MATCH (u:User {id: $user})-[:FOLLOWS]-(f:User)-[:INTERACTED]->(i:Item)
WHERE i.location IS NOT NULL AND NOT EXISTS { (u)-[:INTERACTED]->(i) }
WITH DISTINCT u, i, f
ORDER BY f.id
WITH u, i, collect(f.id) AS who
MATCH (u)-[:INTERACTED]->(j:Item)
WHERE j.location IS NOT NULL AND point.distance(i.location, j.location) <= $radius_km * 1000.0
WITH i, who, min(point.distance(i.location, j.location)) AS metres
RETURN i.id AS item, i.title AS title, size(who) AS friends, who, metres / 1000.0 AS km
ORDER BY friends DESC, km, item
LIMIT $k
