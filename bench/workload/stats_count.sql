-- Dashboard badge: how many conversations have one status.
\set status random(1, 7)
SELECT count(*) FROM conversations WHERE status = (ARRAY['approved', 'generated', 'pending_review', 'rejected', 'needs_revision', 'draft', 'failed'])[:status];
