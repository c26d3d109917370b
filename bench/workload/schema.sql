-- Dashboard workload for `bench/run --cache`: the schema and its data generator.
--
-- Modelled on the requirements inventory's `conversations` table (T-1.2.1, T-2.1, T-4.1):
-- a review dashboard lists conversations with filters and a keyset cursor, shows
-- statistics, fills filter dropdowns with DISTINCT values and looks up templates.
-- psql variables: :rows (conversations), :templates (templates). Deterministic (setseed),
-- so two machines benchmark the same data. Every value the workload's statements compare
-- with is an integer or a fixed literal: the statements call only IMMUTABLE functions,
-- so a cache may take them.

DROP TABLE IF EXISTS conversations, templates, bench_meta CASCADE;

CREATE TABLE templates (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    tier        text NOT NULL,
    category    text NOT NULL,
    structure   text NOT NULL,
    variables   jsonb NOT NULL,
    usage_count integer NOT NULL DEFAULT 0,
    rating      numeric(3, 2) NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL
);

CREATE TABLE conversations (
    id            bigint PRIMARY KEY,
    title         text NOT NULL,
    persona       text NOT NULL,
    emotion       text NOT NULL,
    tier          text NOT NULL,
    status        text NOT NULL,
    category      text[] NOT NULL,
    quality_score numeric(4, 2) NOT NULL,
    turn_count    integer NOT NULL,
    total_tokens  integer NOT NULL,
    template_id   integer REFERENCES templates (id),
    parameters    jsonb NOT NULL,
    metadata      jsonb NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- What the generator and the pgbench scripts agree on: created_at is spread over the
-- :rows seconds before epoch 1767225600 (2026-01-01 UTC), one row per second, so a
-- cursor is an integer epoch.
CREATE TABLE bench_meta (rows bigint NOT NULL, templates integer NOT NULL, epoch_end bigint NOT NULL);

SELECT setseed(0.42);

INSERT INTO templates
SELECT t,
       'template ' || t,
       (ARRAY['template', 'scenario', 'edge_case'])[1 + t % 3],
       (ARRAY['support', 'sales', 'onboarding', 'billing', 'technical', 'feedback'])[1 + t % 6],
       repeat('{{persona}} asks about {{topic}} feeling {{emotion}}. ', 4 + t % 8),
       jsonb_build_object('persona', 'text', 'topic', 'text', 'emotion', 'text', 'turns', 4 + t % 10),
       (random() * 1000)::int,
       round((3 + random() * 2)::numeric, 2),
       t % 10 <> 0,
       timestamptz '2024-01-01 00:00:00+00' + t * interval '1 hour'
FROM generate_series(1, :templates) AS t;

INSERT INTO conversations
SELECT g,
       'conversation ' || g || ' about ' || (ARRAY['refunds', 'pricing', 'login', 'shipping', 'upgrade', 'bug report', 'cancellation', 'feature request'])[1 + (g * 7) % 8],
       (ARRAY['new customer', 'power user', 'admin', 'developer', 'manager', 'student', 'retiree', 'small business owner', 'enterprise buyer', 'reseller', 'partner', 'journalist'])[1 + floor(random() * 12)::int],
       (ARRAY['neutral', 'frustrated', 'curious', 'angry', 'happy', 'confused', 'anxious', 'grateful'])[1 + floor(random() * 8)::int],
       (ARRAY['template', 'scenario', 'edge_case'])[1 + floor(random() * 3)::int],
       -- Review queues are mostly done: approved dominates, pending_review is the queue.
       (ARRAY['approved', 'approved', 'approved', 'generated', 'pending_review', 'rejected', 'needs_revision', 'draft', 'failed'])[1 + floor(random() * 9)::int],
       ARRAY[(ARRAY['support', 'sales', 'onboarding', 'billing', 'technical', 'feedback'])[1 + floor(random() * 6)::int],
             (ARRAY['support', 'sales', 'onboarding', 'billing', 'technical', 'feedback'])[1 + floor(random() * 6)::int]],
       round((4 + random() * 6)::numeric, 2),
       4 + (random() * 16)::int,
       200 + (random() * 3800)::int,
       1 + (random() * (:templates - 1))::int,
       jsonb_build_object('temperature', round(random()::numeric, 2), 'model', (ARRAY['small', 'medium', 'large'])[1 + floor(random() * 3)::int]),
       jsonb_build_object('source', 'generator', 'batch', g / 1000, 'reviewed', random() < 0.6),
       'user' || (random() * 49)::int,
       to_timestamp(1767225600 - :rows + g),
       to_timestamp(1767225600 - :rows + g)
FROM generate_series(1, :rows) AS g;

INSERT INTO bench_meta VALUES (:rows, :templates, 1767225600);

-- The inventory's indexes (T-1.2.1 and the category array of T-1.2.2), plus the
-- cursor's tie-breaker on id.
CREATE INDEX idx_conversations_status ON conversations (status);
CREATE INDEX idx_conversations_tier ON conversations (tier);
CREATE INDEX idx_conversations_created_at ON conversations (created_at DESC, id DESC);
CREATE INDEX idx_conversations_quality_score ON conversations (quality_score);
CREATE INDEX idx_conversations_status_quality ON conversations (status, quality_score);
CREATE INDEX idx_conversations_tier_status_date ON conversations (tier, status, created_at DESC, id DESC);
CREATE INDEX idx_conversations_pending_review ON conversations (created_at) WHERE status = 'pending_review';
CREATE INDEX idx_conversations_category_gin ON conversations USING gin (category);
CREATE INDEX idx_templates_tier ON templates (tier, usage_count DESC);

VACUUM ANALYZE templates;
VACUUM ANALYZE conversations;
