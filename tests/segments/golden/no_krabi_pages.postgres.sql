SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN (
  SELECT
    ev.profile_id,
    COUNT(
      CASE
        WHEN ev.kind = 'page'
        AND ev.ts > CAST('2026-10-25 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND (
          COALESCE(POSITION('/krabi' IN CAST(ev.properties AS JSONB) #>> ARRAY['path']) > 0, FALSE)
        )
        THEN 1
      END
    ) AS agg1
  FROM profile_events AS ev
  WHERE
    (
      ev.kind = 'page'
      AND ev.ts > CAST('2026-10-25 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND ev.ts <= CAST('2026-11-24 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND (
        COALESCE(POSITION('/krabi' IN CAST(ev.properties AS JSONB) #>> ARRAY['path']) > 0, FALSE)
      )
    )
  GROUP BY
    ev.profile_id
) AS evagg
  ON evagg.profile_id = p.profile_id
WHERE
  COALESCE(COALESCE(evagg.agg1, 0) = 0, FALSE)
