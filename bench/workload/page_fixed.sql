-- One-client latency, list page: one fixed cursor, so a cache always hits.
\set cursor 1767225600 - 3600
SELECT id, title, persona, emotion, tier, status, quality_score, turn_count, created_at
FROM conversations
WHERE tier = 'scenario' AND status = 'approved' AND created_at < to_timestamp(:cursor)
ORDER BY created_at DESC, id DESC
LIMIT 25;
