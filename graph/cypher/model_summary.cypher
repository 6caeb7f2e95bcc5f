// name: model_summary
// purpose: Per model written back: users covered, recommendations, distinct items (catalogue coverage) and score range.
// params: (none)
MATCH (:User)-[r:RECOMMENDED]->(i:Item)
WITH r.model AS model, count(r) AS recommendations, count(DISTINCT startNode(r)) AS users,
     count(DISTINCT i) AS items, min(r.score) AS min_score, max(r.score) AS max_score
CALL () {
  MATCH (i:Item)
  RETURN count(i) AS n_items
}
RETURN model, users, recommendations, items, toFloat(items) / n_items AS coverage, min_score, max_score
ORDER BY model
