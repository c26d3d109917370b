-- List page: conversations of one tier and status, newest first, after a keyset cursor.
-- Most readers stay on the first pages (exponential page depth); the cursor is the
-- created_at of the previous page's end, an integer epoch (bench_meta.epoch_end).
\set tier random(1, 3)
\set status random(1, 7)
\set page random_exponential(0, 9, 2.0)
\set cursor 1767225600 - :page * 600
SELECT id, title, persona, emotion, tier, status, quality_score, turn_count, created_at
FROM conversations
WHERE tier = (ARRAY['template', 'scenario', 'edge_case'])[:tier]
  AND status = (ARRAY['approved', 'generated', 'pending_review', 'rejected', 'needs_revision', 'draft', 'failed'])[:status]
  AND created_at < to_timestamp(:cursor)
ORDER BY created_at DESC, id DESC
LIMIT 25;
