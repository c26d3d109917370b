-- One-client latency, list page: a random cursor, so a cache always misses.
\set cursor random(1767225600 - 250000, 1767225600)
SELECT id, title, persona, emotion, tier, status, quality_score, turn_count, created_at
FROM conversations
WHERE tier = 'scenario' AND status = 'approved' AND created_at < to_timestamp(:cursor)
ORDER BY created_at DESC, id DESC
LIMIT 25;
