SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN (
  SELECT
    ev.profile_id,
    COUNT(
      CASE
        WHEN ev.kind = 'track'
        AND ev.event = 'Order Completed'
        AND ev.ts > CAST('2025-11-24 12:00:00.000000+00:00' AS TIMESTAMP)
        AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
      END
    ) AS agg1
  FROM profile_events AS ev
  WHERE
    (
      ev.kind = 'track'
      AND ev.event = 'Order Completed'
      AND ev.ts > CAST('2025-11-24 12:00:00.000000+00:00' AS TIMESTAMP)
      AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMP)
    )
  GROUP BY
    ev.profile_id
) AS evagg
  ON evagg.profile_id = p.profile_id
WHERE
  (
    COALESCE(COALESCE(evagg.agg1, 0) >= 2, FALSE)
  )
  AND (
    EXISTS(
      SELECT
        1
      FROM profile_traits AS t1
      WHERE
        t1.profile_id = p.profile_id
        AND t1.name = 'country'
        AND GET_JSON_OBJECT(CONCAT('{"v":', t1.value, '}'), '$.v') = 'DE'
    )
  )
