-- One-client latency, point lookup: a random conversation, so a cache always misses.
\set id random(1, 300000)
SELECT id, title, persona, emotion, tier, status, quality_score, created_at
FROM conversations WHERE id = :id;
