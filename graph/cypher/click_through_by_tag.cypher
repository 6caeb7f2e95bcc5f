// name: click_through_by_tag
// purpose: Click-through of shown items by the tags they carry (tags shown at least min_impressions times), best first.
// params: min_impressions (int), k (int)
MATCH (m:Impression)-[:SHOWS]->(:Item)-[:HAS_TAG]->(t:Tag)
WITH t, count(m) AS impressions, count(m.chosen_at) AS chosen
WHERE impressions >= $min_impressions
RETURN t.id AS tag, t.name AS name, impressions, chosen, toFloat(chosen) / impressions AS click_through
ORDER BY click_through DESC, impressions DESC, tag
LIMIT $k
