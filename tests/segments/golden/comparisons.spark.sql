SELECT
  p.profile_id
FROM profiles AS p
WHERE
  (
    EXISTS(
      SELECT
        1
      FROM profile_traits AS t1
      WHERE
        t1.profile_id = p.profile_id
        AND t1.name = 'age'
        AND CASE
          WHEN GET_JSON_OBJECT(CONCAT('{"v":', t1.value, '}'), '$.v') RLIKE '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$'
          THEN CAST(GET_JSON_OBJECT(CONCAT('{"v":', t1.value, '}'), '$.v') AS DOUBLE)
        END >= 18
    )
  )
  AND (
    EXISTS(
      SELECT
        1
      FROM profile_traits AS t2
      WHERE
        t2.profile_id = p.profile_id
        AND t2.name = 'age'
        AND CASE
          WHEN GET_JSON_OBJECT(CONCAT('{"v":', t2.value, '}'), '$.v') RLIKE '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$'
          THEN CAST(GET_JSON_OBJECT(CONCAT('{"v":', t2.value, '}'), '$.v') AS DOUBLE)
        END < 65
    )
  )
  AND (
    EXISTS(
      SELECT
        1
      FROM profile_traits AS t3
      WHERE
        t3.profile_id = p.profile_id
        AND t3.name = 'country'
        AND GET_JSON_OBJECT(CONCAT('{"v":', t3.value, '}'), '$.v') <> 'FR'
    )
  )
