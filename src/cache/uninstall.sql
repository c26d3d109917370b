-- Removes everything install.sql added; the schema's functions take their triggers along.
DROP EVENT TRIGGER IF EXISTS pgsidecar_cache_ddl;
DROP EVENT TRIGGER IF EXISTS pgsidecar_cache_drop;
DROP SCHEMA IF EXISTS pgsidecar_cache CASCADE;
