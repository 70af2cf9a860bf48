SELECT
  p.profile_id
FROM profiles AS p
WHERE
  (
    COALESCE(
      (
        SELECT
          MAX(cv.clv)
        FROM clv_scores AS cv
        WHERE
          cv.profile_id = p.profile_id
      ) > 500,
      FALSE
    )
  )
  AND (
    COALESCE(
      (
        SELECT
          MAX(cv.p_alive)
        FROM clv_scores AS cv
        WHERE
          cv.profile_id = p.profile_id
      ) < 0.3,
      FALSE
    )
  )
