// name: shown_not_chosen
// purpose: Items a user was shown and never chose (no feedback named any of their impressions), how often and when last: what the learn policy stops showing.
// params: user (string), limit (int)
MATCH (:User {id: $user})-[:SAW]->(m:Impression)-[:SHOWS]->(i:Item)
WITH i, count(m) AS shown, count(m.chosen_at) AS chosen, count(m.disliked_at) AS disliked, max(m.at) AS last_shown
WHERE chosen = 0 AND disliked = 0
RETURN i.id AS item, i.title AS title, shown, last_shown
ORDER BY shown DESC, last_shown DESC, item
LIMIT $limit
