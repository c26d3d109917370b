-- Review queue page: pending_review only (the partial index), newest first, by cursor.
\set page random_exponential(0, 9, 2.0)
\set cursor 1767225600 - :page * 600
SELECT id, title, persona, tier, quality_score, created_at
FROM conversations
WHERE status = 'pending_review' AND created_at < to_timestamp(:cursor)
ORDER BY created_at DESC
LIMIT 25;
