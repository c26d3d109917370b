-- Review action: approve, reject or send back one conversation. The new status is drawn
-- with the generator's weights, so repeated runs keep the table's distribution.
\set id random(1, 300000)
\set status random(1, 9)
UPDATE conversations
SET status = (ARRAY['approved', 'approved', 'approved', 'generated', 'pending_review', 'rejected', 'needs_revision', 'draft', 'failed'])[:status],
    quality_score = round((4 + random() * 6)::numeric, 2),
    updated_at = now()
WHERE id = :id;
