-- Observability that tells the truth (issue #16).

-- One statistics row per (minute, sidecar, shape): a flush that runs twice (a retried
-- or re-queued job) writes once. Rows already duplicated keep their first copy.
DELETE FROM pgsidecar.stats_snapshots a
USING pgsidecar.stats_snapshots b
WHERE a.at = b.at AND a.sidecar = b.sidecar AND a.database = b.database
  AND a.username = b.username AND a.fingerprint = b.fingerprint AND a.id > b.id;
CREATE UNIQUE INDEX stats_snapshots_minute
    ON pgsidecar.stats_snapshots (at, sidecar, database, username, fingerprint);
-- The history of one shape, for /api/history?fingerprint=.
CREATE INDEX stats_snapshots_fingerprint ON pgsidecar.stats_snapshots (fingerprint, at);

-- Why a plan was captured (critical, alert, warning, manual, latency), why it fell
-- back to plain EXPLAIN when it did, and the shape's 5-minute p50 when it was taken,
-- so a later capture can tell whether the latency moved since.
ALTER TABLE pgsidecar.plans
    ADD COLUMN reason          text,
    ADD COLUMN fallback_reason text,
    ADD COLUMN p50_ms          double precision;

-- The latency on either side of a plan change, when known.
ALTER TABLE pgsidecar.plan_changes
    ADD COLUMN reason     text,
    ADD COLUMN old_p50_ms double precision,
    ADD COLUMN new_p50_ms double precision;
