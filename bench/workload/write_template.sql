-- Generation run: a template's usage counter goes up.
\set t random(1, 200)
UPDATE templates SET usage_count = usage_count + 1 WHERE id = :t;
