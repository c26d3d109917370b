-- Work shared by the sidecars of a fleet: a job queue and the claims that make sure
-- only one sidecar captures a plan per query per interval.

CREATE TABLE pgsidecar.jobs (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    -- NULL once the job no longer needs it (parameter values may be private).
    payload      jsonb,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    run_at       timestamptz NOT NULL DEFAULT now(),
    dedupe_key   text,
    error        text,
    claimed_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
-- A key stays taken until retention removes the finished job that holds it.
CREATE UNIQUE INDEX jobs_dedupe_key ON pgsidecar.jobs (dedupe_key) WHERE dedupe_key IS NOT NULL;
-- Claiming scans pending jobs in run_at order.
CREATE INDEX jobs_status_run_at ON pgsidecar.jobs (status, run_at);

CREATE TABLE pgsidecar.explain_claims (
    database    text NOT NULL,
    fingerprint text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (database, fingerprint)
);
