// name: activity_centres
// purpose: Where a user checks in: their located places grouped into square cells of a given size, each with its check-in weight, share and weighted centre.
// params: user (string), cell_km (float), k (int)
MATCH (u:User {id: $user})-[r:INTERACTED]->(i:Item)
WHERE i.location IS NOT NULL
WITH collect({w: r.weight, lat: i.location.latitude, lon: i.location.longitude}) AS visits, sum(r.weight) AS total
UNWIND visits AS v
WITH total, v, toInteger(floor(v.lat * 111.19508 / $cell_km)) AS cy,
     toInteger(floor(v.lon * 111.19508 * cos(radians(v.lat)) / $cell_km)) AS cx
WITH total, cy, cx, sum(v.w) AS weight, count(*) AS places, sum(v.w * v.lat) AS wlat, sum(v.w * v.lon) AS wlon
RETURN wlat / weight AS lat, wlon / weight AS lon, places, weight, weight / total AS share
ORDER BY weight DESC, places DESC, lat, lon
LIMIT $k
