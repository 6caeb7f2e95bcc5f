// name: click_through_by_position
// purpose: Click-through by list position for one serving policy, with the mean logged propensity and how often the slot was explored.
// params: policy (string)
MATCH (m:Impression)
WHERE m.policy = $policy
WITH m.position AS position, count(m) AS impressions, count(m.chosen_at) AS chosen, avg(m.propensity) AS propensity,
     sum(CASE WHEN m.explored THEN 1 ELSE 0 END) AS explored
RETURN position, impressions, chosen, toFloat(chosen) / impressions AS click_through,
       propensity AS mean_propensity, toFloat(explored) / impressions AS explored_share
ORDER BY position
