// name: popularity_bias
// purpose: The items a model recommends most, next to how often they were played and their rank by plays (popularity bias).
// params: model (string), k (int)
MATCH (i:Item)
WITH i, COUNT { (:User)-[:INTERACTED]->(i) } AS played
ORDER BY played DESC, i.id
WITH collect({item: i, played: played}) AS ranked
UNWIND range(0, size(ranked) - 1) AS idx
WITH ranked[idx].item AS i, ranked[idx].played AS played, idx + 1 AS play_rank, size(ranked) AS n_items
WITH i, played, play_rank, n_items, COUNT { (:User)-[:RECOMMENDED {model: $model}]->(i) } AS recommended
WHERE recommended > 0
RETURN i.id AS item, i.title AS title, recommended, played, play_rank, n_items
ORDER BY recommended DESC, played DESC, item
LIMIT $k
