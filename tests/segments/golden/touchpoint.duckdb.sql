SELECT
  p.profile_id
FROM profiles AS p
WHERE
  COALESCE(
    COALESCE(
      (
        SELECT
          MAX(tp1.count)
        FROM profile_touchpoints AS tp1
        WHERE
          tp1.profile_id = p.profile_id AND tp1.touchpoint = 'app'
      ),
      0
    ) >= 1,
    FALSE
  )
