-- pgsidecar result cache: statement-level write triggers and a DDL event trigger that
-- NOTIFY channel pgsidecar_cache. Payloads: "w,<table oid>,<µs since epoch>" after a
-- write, "d,<µs>" after DDL. Idempotent: running it again covers new tables.
CREATE SCHEMA IF NOT EXISTS pgsidecar_cache;

CREATE OR REPLACE FUNCTION pgsidecar_cache.micros() RETURNS text
LANGUAGE sql VOLATILE AS
$f$ SELECT ((extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint)::text $f$;

CREATE OR REPLACE FUNCTION pgsidecar_cache.notify_write() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_catalog.pg_notify('pgsidecar_cache', 'w,' || TG_RELID::text || ',' || pgsidecar_cache.micros());
  RETURN NULL;
END $f$;

-- Adds the write trigger to one permanent table or partitioned table, unless it has it.
CREATE OR REPLACE FUNCTION pgsidecar_cache.cover(rel oid) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = rel AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgsidecar_cache')
               AND n.nspname NOT LIKE 'pg\_%')
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                     WHERE t.tgrelid = rel AND t.tgname = 'pgsidecar_cache_notify') THEN
    EXECUTE pg_catalog.format(
      'CREATE TRIGGER pgsidecar_cache_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
      'ON %s FOR EACH STATEMENT EXECUTE FUNCTION pgsidecar_cache.notify_write()',
      rel::regclass);
  END IF;
END $f$;

-- DDL anywhere in the database: cover new tables, then tell every sidecar to flush.
-- Temporary objects are private to their session and never cached: no flush for them.
CREATE OR REPLACE FUNCTION pgsidecar_cache.notify_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $f$
DECLARE
  cmd record;
  shared_object boolean := false;
BEGIN
  FOR cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
    IF cmd.schema_name IS NULL OR cmd.schema_name NOT LIKE 'pg\_temp%' THEN
      shared_object := true;
    END IF;
    IF cmd.object_type IN ('table', 'table column') AND cmd.command_tag IN
       ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE') THEN
      PERFORM pgsidecar_cache.cover(cmd.objid);
    END IF;
  END LOOP;
  IF shared_object OR TG_TAG IN ('GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES') THEN
    PERFORM pg_catalog.pg_notify('pgsidecar_cache', 'd,' || pgsidecar_cache.micros());
  END IF;
END $f$;

CREATE OR REPLACE FUNCTION pgsidecar_cache.notify_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $f$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects()
             WHERE schema_name IS NULL OR schema_name NOT LIKE 'pg\_temp%') THEN
    PERFORM pg_catalog.pg_notify('pgsidecar_cache', 'd,' || pgsidecar_cache.micros());
  END IF;
END $f$;

DROP EVENT TRIGGER IF EXISTS pgsidecar_cache_ddl;
CREATE EVENT TRIGGER pgsidecar_cache_ddl ON ddl_command_end
  EXECUTE FUNCTION pgsidecar_cache.notify_ddl();
DROP EVENT TRIGGER IF EXISTS pgsidecar_cache_drop;
CREATE EVENT TRIGGER pgsidecar_cache_drop ON sql_drop
  EXECUTE FUNCTION pgsidecar_cache.notify_drop();

DO $d$ BEGIN
  PERFORM pgsidecar_cache.cover(c.oid) FROM pg_catalog.pg_class c
   WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p';
END $d$;
