// name: recommendations_within
// purpose: A model's written-back recommendations for a user that lie within a radius of a point, in rank order, with their distance.
// params: user (string), model (string), lat (float), lon (float), radius_km (float), k (int)
MATCH (:User {id: $user})-[r:RECOMMENDED {model: $model}]->(i:Item)
WHERE i.location IS NOT NULL
WITH r, i, point.distance(i.location, point({latitude: $lat, longitude: $lon})) / 1000.0 AS km
WHERE km <= $radius_km
RETURN r.rank AS rank, i.id AS item, i.title AS title, r.score AS score, km
ORDER BY rank
LIMIT $k
