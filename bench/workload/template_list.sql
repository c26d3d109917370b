-- Template picker: the most used active templates of one tier.
\set tier random(1, 3)
SELECT id, name, category, usage_count, rating
FROM templates
WHERE tier = (ARRAY['template', 'scenario', 'edge_case'])[:tier] AND is_active
ORDER BY usage_count DESC, id
LIMIT 20;
