-- The proxy's own schema: what the sidecars observed (slow statements, plans, alerts,
-- per-minute statistics). Every sidecar of a fleet writes here, tagged with its name.

CREATE SCHEMA IF NOT EXISTS pgsidecar;

-- The migrator creates this table before running any file (it needs it to know what
-- to run); it is repeated here so that this file alone documents the whole schema.
CREATE TABLE IF NOT EXISTS pgsidecar.schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per statement that crossed a slow-query threshold.
CREATE TABLE pgsidecar.slow_events (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL,
    sidecar          text NOT NULL,
    database         text NOT NULL,
    username         text NOT NULL,
    fingerprint      text NOT NULL,
    query            text NOT NULL,
    duration_ms      double precision NOT NULL,
    level            text NOT NULL CHECK (level IN ('warning', 'critical')),
    application_name text
);
CREATE INDEX slow_events_at ON pgsidecar.slow_events (at);
CREATE INDEX slow_events_fingerprint ON pgsidecar.slow_events (fingerprint);

-- Captured EXPLAIN output. `params` holds the parameter values of an EXPLAIN ANALYZE
-- sample only while they are needed; they may be private.
CREATE TABLE pgsidecar.plans (
    id          bigserial PRIMARY KEY,
    captured_at timestamptz NOT NULL DEFAULT now(),
    sidecar     text NOT NULL,
    database    text NOT NULL,
    fingerprint text NOT NULL,
    query       text NOT NULL,
    plan        jsonb NOT NULL,
    plan_hash   text NOT NULL,
    total_cost  double precision NOT NULL,
    actual_ms   double precision,
    analyzed    boolean NOT NULL DEFAULT false,
    params      jsonb
);
-- "The latest plan of this query" is the question plan-change detection asks on
-- every capture.
CREATE INDEX plans_latest ON pgsidecar.plans (database, fingerprint, captured_at DESC);
CREATE INDEX plans_captured_at ON pgsidecar.plans (captured_at);

-- A query whose plan hash differs from its previous capture.
CREATE TABLE pgsidecar.plan_changes (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    database    text NOT NULL,
    fingerprint text NOT NULL,
    old_hash    text NOT NULL,
    new_hash    text NOT NULL
);
CREATE INDEX plan_changes_at ON pgsidecar.plan_changes (at);

-- A query that stayed slow for `consecutive` executions in a row.
CREATE TABLE pgsidecar.alerts (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    sidecar     text NOT NULL,
    database    text NOT NULL,
    username    text NOT NULL,
    fingerprint text NOT NULL,
    query       text NOT NULL,
    level       text NOT NULL CHECK (level IN ('warning', 'critical')),
    consecutive integer NOT NULL,
    duration_ms double precision NOT NULL
);
CREATE INDEX alerts_at ON pgsidecar.alerts (at);

-- Per-minute statistics per (sidecar, database, user, fingerprint); `at` is the start
-- of the minute.
CREATE TABLE pgsidecar.stats_snapshots (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    sidecar     text NOT NULL,
    database    text NOT NULL,
    username    text NOT NULL,
    fingerprint text NOT NULL,
    query       text NOT NULL,
    command     text NOT NULL,
    calls       bigint NOT NULL,
    errors      bigint NOT NULL,
    rows        bigint NOT NULL,
    total_ms    double precision NOT NULL,
    p50_ms      double precision NOT NULL,
    p95_ms      double precision NOT NULL,
    p99_ms      double precision NOT NULL,
    max_ms      double precision NOT NULL
);
CREATE INDEX stats_snapshots_at ON pgsidecar.stats_snapshots (at);
