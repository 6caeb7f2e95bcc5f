// name: user_history
// purpose: What a user interacted with, heaviest first, with each item's tags and the tags the user gave it.
// params: user (string), limit (int)
MATCH (u:User {id: $user})-[r:INTERACTED]->(i:Item)
OPTIONAL MATCH (i)-[:HAS_TAG]->(t:Tag)
WITH u, r, i, t
ORDER BY t.id
WITH u, r, i, collect(t.name) AS tags
OPTIONAL MATCH (u)-[g:TAGGED]->(i)
WITH r, i, tags, g
ORDER BY g.tag
WITH r, i, tags, collect(g.tag) AS user_tags
RETURN i.id AS item, i.title AS title, r.weight AS weight, r.rating AS rating, r.ts AS ts, tags, user_tags
ORDER BY weight DESC, item
LIMIT $limit
