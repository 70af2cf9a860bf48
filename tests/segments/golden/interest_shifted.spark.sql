SELECT
  p.profile_id
FROM profiles AS p
WHERE
  COALESCE(
    p.interest_shifted_at > CAST('2026-11-17 12:00:00.000000+00:00' AS TIMESTAMP)
    AND p.interest_shifted_at <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMP),
    FALSE
  )
