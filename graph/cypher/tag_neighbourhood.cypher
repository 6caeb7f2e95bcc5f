// name: tag_neighbourhood
// purpose: Tags that label the same items as a tag, by how many items they share, with how many users tagged with both.
// params: tag (string), k (int)
MATCH (t:Tag {id: $tag})<-[:HAS_TAG]-(i:Item)-[:HAS_TAG]->(o:Tag)
WHERE o <> t
WITH t, o, count(i) AS shared_items
CALL (t, o) {
  MATCH (u:User)-[a:TAGGED]->(:Item)
  WHERE a.tag = t.id
  WITH DISTINCT u
  WHERE EXISTS { (u)-[b:TAGGED]->(:Item) WHERE b.tag = o.id }
  RETURN count(u) AS shared_taggers
}
RETURN o.id AS tag, o.name AS name, o.kind AS kind, shared_items, shared_taggers
ORDER BY shared_items DESC, shared_taggers DESC, tag
LIMIT $k
