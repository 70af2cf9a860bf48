SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN (
  SELECT
    ev.profile_id,
    AVG(
      CASE
        WHEN ev.kind = 'track'
        AND ev.event = 'Order Completed'
        AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        THEN CASE
          WHEN REGEXP_MATCHES((
            ev.properties ->> '$.revenue'
          ), '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$')
          THEN CAST(ev.properties ->> '$.revenue' AS DOUBLE)
        END
      END
    ) AS agg1,
    MIN(
      CASE
        WHEN ev.kind = 'track'
        AND ev.event = 'Order Completed'
        AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        THEN CASE
          WHEN REGEXP_MATCHES((
            ev.properties ->> '$.revenue'
          ), '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$')
          THEN CAST(ev.properties ->> '$.revenue' AS DOUBLE)
        END
      END
    ) AS agg2,
    MAX(
      CASE
        WHEN ev.kind = 'track'
        AND ev.event = 'Order Completed'
        AND ev.ts > CAST('2025-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        THEN CASE
          WHEN REGEXP_MATCHES((
            ev.properties ->> '$.revenue'
          ), '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$')
          THEN CAST(ev.properties ->> '$.revenue' AS DOUBLE)
        END
      END
    ) AS agg3
  FROM profile_events AS ev
  WHERE
    (
      ev.kind = 'track'
      AND ev.event = 'Order Completed'
      AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
    )
    OR (
      ev.kind = 'track'
      AND ev.event = 'Order Completed'
      AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
    )
    OR (
      ev.kind = 'track'
      AND ev.event = 'Order Completed'
      AND ev.ts > CAST('2025-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
    )
  GROUP BY
    ev.profile_id
) AS evagg
  ON evagg.profile_id = p.profile_id
WHERE
  (
    COALESCE(evagg.agg1 > 20, FALSE)
  )
  AND (
    COALESCE(evagg.agg2 >= 5, FALSE)
  )
  AND (
    COALESCE(evagg.agg3 < 1000, FALSE)
  )
