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
                CAST(-GREATEST(
                  0.0,
                  CAST((
                    1795521600.0 - CAST(DATE_PART('epoch', i1.as_of) AS DOUBLE PRECISION)
                  ) AS DOUBLE PRECISION) / 86400.0
                ) AS DOUBLE PRECISION) / i1.half_life_days
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
