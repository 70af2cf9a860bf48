SELECT
  p.profile_id
FROM profiles AS p
WHERE
  COALESCE(
    p.last_seen > CAST('2026-10-25 12:00:00.000000+00:00' AS TIMESTAMP)
    AND p.last_seen <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMP),
    FALSE
  )
