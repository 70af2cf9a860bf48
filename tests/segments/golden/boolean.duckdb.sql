SELECT
  p.profile_id
FROM profiles AS p
WHERE
  (
    NOT (
      (
        EXISTS(
          SELECT
            1
          FROM profile_traits AS t1
          WHERE
            t1.profile_id = p.profile_id
            AND t1.name = 'country'
            AND (
              t1.value ->> '$'
            ) = 'DE'
        )
      )
      OR (
        EXISTS(
          SELECT
            1
          FROM profile_traits AS t2
          WHERE
            t2.profile_id = p.profile_id
            AND t2.name = 'vip'
            AND (
              t2.value ->> '$'
            ) = 'true'
        )
      )
    )
  )
  AND (
    EXISTS(
      SELECT
        1
      FROM profile_traits AS t3
      WHERE
        t3.profile_id = p.profile_id
        AND t3.name = 'age'
        AND CASE
          WHEN REGEXP_MATCHES((
            t3.value ->> '$'
          ), '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$')
          THEN CAST(t3.value ->> '$' AS DOUBLE)
        END <= 40
    )
  )
