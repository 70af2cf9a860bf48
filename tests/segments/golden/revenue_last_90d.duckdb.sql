SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN (
  SELECT
    ev.profile_id,
    SUM(
      CASE
        WHEN ev.kind = 'track'
        AND ev.event = 'Order Completed'
        AND ev.ts > CAST('2026-08-26 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        THEN CASE
          WHEN REGEXP_MATCHES((
            ev.properties ->> '$.revenue'
          ), '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$')
          THEN CAST(ev.properties ->> '$.revenue' AS DOUBLE)
        END
      END
    ) AS agg1
  FROM profile_events AS ev
  WHERE
    (
      ev.kind = 'track'
      AND ev.event = 'Order Completed'
      AND ev.ts > CAST('2026-08-26 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
    )
  GROUP BY
    ev.profile_id
) AS evagg
  ON evagg.profile_id = p.profile_id
WHERE
  COALESCE(COALESCE(evagg.agg1, 0) > 100, FALSE)
