SELECT
  p.profile_id
FROM profiles AS p
WHERE
  COALESCE(
    COALESCE(
      (
        SELECT
          MAX(
            i1.score * POWER(
              2.0,
              GREATEST(
                -1000.0,
                -GREATEST(0.0, (
                  1795521600.0 - EPOCH(i1.as_of)
                ) / 86400.0) / i1.half_life_days
              )
            )
          )
        FROM profile_interests AS i1
        WHERE
          i1.profile_id = p.profile_id AND i1.key = 'destination:new-york'
      ),
      0.0
    ) > 0.4,
    FALSE
  )
