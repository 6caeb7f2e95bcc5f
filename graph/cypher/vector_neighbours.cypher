// name: vector_neighbours
// purpose: An item's nearest neighbours in a written-back embedding, through its vector index (score = (1 + cosine) / 2).
// params: index (string), property (string), item (string), k (int)
MATCH (x:Item {id: $item})
CALL db.index.vector.queryNodes($index, $k + 1, x[$property]) YIELD node, score
WITH x, node, score
WHERE node <> x
RETURN node.id AS item, node.title AS title, score
ORDER BY score DESC, item
LIMIT $k
