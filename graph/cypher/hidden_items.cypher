// name: hidden_items
// purpose: Items hidden from every list (recommended or similar), with how many played or disliked them.
// params: limit (int)
MATCH (i:Item)
WHERE i.hidden = true
RETURN i.id AS item, i.title AS title, COUNT { (i)<-[:INTERACTED]-(:User) } AS played,
       COUNT { (i)<-[:DISLIKED]-(:User) } AS disliked
ORDER BY played DESC, item
LIMIT $limit
