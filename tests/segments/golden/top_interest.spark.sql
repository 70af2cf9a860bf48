SELECT
  p.profile_id
FROM profiles AS p
WHERE
  COALESCE(p.top_interest = 'destination:new-york', FALSE)
