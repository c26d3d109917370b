-- Filter dropdown options: the distinct personas or emotions of one tier (the inventory
-- caches filter options for 10 minutes).
\set tier random(1, 3)
\set which random(0, 1)
\if :which
SELECT DISTINCT persona FROM conversations WHERE tier = (ARRAY['template', 'scenario', 'edge_case'])[:tier] ORDER BY persona;
\else
SELECT DISTINCT emotion FROM conversations WHERE tier = (ARRAY['template', 'scenario', 'edge_case'])[:tier] ORDER BY emotion;
\endif
