-- Dashboard statistics: per status count, average quality and tokens for one tier
-- (an aggregate over a third of the table; the inventory caches statistics 1 minute).
\set tier random(1, 3)
SELECT status, count(*) AS conversations, round(avg(quality_score), 2) AS avg_quality,
       sum(total_tokens) AS tokens
FROM conversations
WHERE tier = (ARRAY['template', 'scenario', 'edge_case'])[:tier]
GROUP BY status
ORDER BY status;
