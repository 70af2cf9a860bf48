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
      AND t1.name = 'country'
      AND t1.provenance = 'crm_import'
      AND GET_JSON_OBJECT(CONCAT('{"v":', t1.value, '}'), '$.v') = 'AT'
  )
