// name: shared_tags
// purpose: Items that share the most tags with an item, with the Jaccard overlap of their tag sets.
// params: item (string), k (int)
MATCH (x:Item {id: $item})
WITH x, COUNT { (x)-[:HAS_TAG]->(:Tag) } AS n_x
MATCH (x)-[:HAS_TAG]->(t:Tag)<-[:HAS_TAG]-(y:Item)
WHERE y <> x
WITH y, n_x, t
ORDER BY t.id
WITH y, n_x, collect(t.name) AS tags
WITH y, tags, size(tags) AS shared, n_x + COUNT { (y)-[:HAS_TAG]->(:Tag) } - size(tags) AS n_union
RETURN y.id AS item, y.title AS title, shared, toFloat(shared) / n_union AS jaccard, tags
ORDER BY shared DESC, jaccard DESC, item
LIMIT $k
