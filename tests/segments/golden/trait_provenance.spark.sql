SELECT
  p.profile_id
FROM profiles AS p
WHERE
  EXISTS(
    SELECT
      1
    FROM profile_traits AS t1
    WHERE
      t1.profile_id = p.profile_id
      AND t1.name = 'email'
      AND t1.provenance = 'customer_provided'
      AND NOT GET_JSON_OBJECT(CONCAT('{"v":', t1.value, '}'), '$.v') IS NULL
  )
