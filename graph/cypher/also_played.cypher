// name: also_played
// purpose: Users who played an item also played these: co-occurrence counts with lift (observed / expected by chance).
// params: item (string), min_co (int), k (int)
CALL () {
  MATCH (u:User)
  WHERE EXISTS { (u)-[:INTERACTED]->(:Item) }
  RETURN count(u) AS n_users
}
MATCH (x:Item {id: $item})
WITH x, n_users, COUNT { (x)<-[:INTERACTED]-(:User) } AS n_x
MATCH (x)<-[:INTERACTED]-(u:User)-[:INTERACTED]->(y:Item)
WHERE y <> x
WITH y, n_users, n_x, count(u) AS co
WHERE co >= $min_co
WITH y, n_users, n_x, co, COUNT { (y)<-[:INTERACTED]-(:User) } AS n_y
RETURN y.id AS item, y.title AS title, co, n_y AS played, toFloat(co) * n_users / (n_x * n_y) AS lift
ORDER BY lift DESC, co DESC, item
LIMIT $k
