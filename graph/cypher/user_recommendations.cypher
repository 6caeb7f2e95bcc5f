// name: user_recommendations
// purpose: The top recommendations a model wrote back for a user, in rank order.
// params: user (string), model (string), k (int)
MATCH (:User {id: $user})-[r:RECOMMENDED {model: $model}]->(i:Item)
RETURN r.rank AS rank, i.id AS item, i.title AS title, r.score AS score, r.at AS at
ORDER BY rank
LIMIT $k
