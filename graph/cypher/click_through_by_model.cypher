// name: click_through_by_model
// purpose: Logged impressions per serving policy and model since a time: how many were chosen or disliked, the click-through rate and the share shown to explore.
// params: since (float)
MATCH (m:Impression)
WHERE m.at >= $since
WITH m.policy AS policy, m.model AS model, count(m) AS impressions, count(m.chosen_at) AS chosen,
     count(m.disliked_at) AS disliked, sum(CASE WHEN m.explored THEN 1 ELSE 0 END) AS explored
RETURN policy, model, impressions, chosen, disliked, toFloat(chosen) / impressions AS click_through,
       toFloat(explored) / impressions AS explored_share
ORDER BY policy, model
