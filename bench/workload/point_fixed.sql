-- One-client latency, point lookup: one fixed conversation, so a cache always hits.
\set id 4242
SELECT id, title, persona, emotion, tier, status, quality_score, created_at
FROM conversations WHERE id = :id;
