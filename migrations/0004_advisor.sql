-- Index advisor (issue #12): index usage snapshots, so that a statistics reset or a
-- restart loses nothing of the observation behind "unused", and the measured effect of
-- suggestions that were applied (the closed loop). Neither holds a literal value.

CREATE TABLE pgsidecar.index_snapshots (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    sidecar     text NOT NULL,
    database    text NOT NULL,
    index_name  text NOT NULL,   -- schema-qualified unless in public
    table_name  text NOT NULL,
    idx_scan    bigint NOT NULL,
    size_bytes  bigint NOT NULL,
    blks_hit    bigint NOT NULL,
    blks_read   bigint NOT NULL
);
CREATE INDEX index_snapshots_index ON pgsidecar.index_snapshots (database, index_name, at);

CREATE TABLE pgsidecar.advice_outcomes (
    sidecar           text NOT NULL,
    database          text NOT NULL,
    index_name        text NOT NULL,
    fingerprint       bigint NOT NULL,
    applied_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    cost_before       double precision,
    cost_after        double precision,
    before_calls      bigint NOT NULL,
    before_p50_ms     double precision NOT NULL,
    before_p95_ms     double precision NOT NULL,
    after_calls       bigint NOT NULL,
    after_p50_ms      double precision NOT NULL,
    after_p95_ms      double precision NOT NULL,
    PRIMARY KEY (sidecar, database, index_name, fingerprint)
);
