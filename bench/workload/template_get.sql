-- Template lookup by id (the inventory caches templates for 5 minutes).
\set t random(1, 200)
SELECT id, name, tier, category, structure, variables, usage_count, rating
FROM templates
WHERE id = :t AND is_active;
