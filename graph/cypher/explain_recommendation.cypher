// name: explain_recommendation
// purpose: The graph paths behind a stored recommendation: a followed user played it, it shares a tag with your items, or people who share your items played it.
// params: user (string), item (string), model (string), limit (int)
MATCH (u:User {id: $user})-[rec:RECOMMENDED {model: $model}]->(i:Item {id: $item})
CALL (u, i) {
  MATCH p = (u)-[:FOLLOWS]->(:User)-[:INTERACTED]->(i)
  RETURN 'followed user played it' AS why, p
  UNION ALL
  MATCH p = (u)-[:INTERACTED]->(:Item)-[:HAS_TAG]->(:Tag)<-[:HAS_TAG]-(i)
  RETURN 'shares a tag with an item you played' AS why, p
  UNION ALL
  MATCH p = (u)-[:INTERACTED]->(:Item)<-[:INTERACTED]-(:User)-[:INTERACTED]->(i)
  WHERE nodes(p)[2] <> u
  RETURN 'played by someone who played your items' AS why, p
}
RETURN rec.rank AS rank, rec.score AS score, why,
       [n IN nodes(p) | coalesce(n.id, n.iri)] AS ids,
       [n IN nodes(p) | coalesce(n.title, n.name, n.id)] AS names,
       [r IN relationships(p) | type(r)] AS rels
ORDER BY why, ids
LIMIT $limit
