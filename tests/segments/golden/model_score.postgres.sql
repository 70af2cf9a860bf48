SELECT
  p.profile_id
FROM profiles AS p
WHERE
  COALESCE(
    (
      SELECT
        MAX(sc.score)
      FROM model_scores AS sc
      WHERE
        sc.profile_id = p.profile_id AND sc.model = 'churn_30d'
    ) > 0.7,
    FALSE
  )
