// name: model_overlap
// purpose: How far two models agree for a user: shared items, items only one recommends, and the Jaccard overlap.
// params: user (string), model_a (string), model_b (string)
MATCH (u:User {id: $user})
OPTIONAL MATCH (u)-[a:RECOMMENDED {model: $model_a}]->(i:Item)
WITH u, i
ORDER BY i.id
WITH u, collect(i.id) AS items_a
OPTIONAL MATCH (u)-[b:RECOMMENDED {model: $model_b}]->(j:Item)
WITH items_a, j
ORDER BY j.id
WITH items_a, collect(j.id) AS items_b
WITH items_a, items_b, [x IN items_a WHERE x IN items_b] AS shared
RETURN size(items_a) AS n_a, size(items_b) AS n_b, size(shared) AS n_shared,
       CASE WHEN size(items_a) + size(items_b) = 0 THEN 0.0
            ELSE toFloat(size(shared)) / (size(items_a) + size(items_b) - size(shared)) END AS jaccard,
       shared,
       [x IN items_a WHERE NOT x IN items_b] AS only_a,
       [x IN items_b WHERE NOT x IN items_a] AS only_b
