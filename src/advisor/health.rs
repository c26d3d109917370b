//! Index health from the statistics views: unused, duplicate and invalid indexes (never
//! a primary key, unique or exclusion constraint, replica identity, or an index a
//! foreign key relies on), tables read mostly by sequential scans, hit rates against
//! the target, and tables due for VACUUM or ANALYZE.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::config::AdvisorConfig;
use super::report::{size, DropCandidate, Finding};

/// One index as the statistics views show it.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub schema: String,
    pub table: String,
    pub index: String,
    pub scans: i64,
    pub size: i64,
    /// PK, unique, exclusion, replica identity, or backing a foreign key.
    pub protected: bool,
    pub valid: bool,
    pub method: String,
    pub predicate: Option<String>,
    pub keys: Vec<i16>,
    pub blks_hit: i64,
    pub blks_read: i64,
}

const INDEXES: &str = "SELECT s.schemaname::text, s.relname::text, s.indexrelname::text,
        s.idx_scan, pg_catalog.pg_relation_size(s.indexrelid),
        (i.indisprimary OR i.indisunique OR i.indisexclusion OR i.indisreplident
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co
                    WHERE co.contype = 'f' AND co.conrelid = i.indrelid
                      AND (SELECT array_agg(x ORDER BY x) FROM unnest(co.conkey) x)
                        = (SELECT array_agg(x ORDER BY x)
                           FROM unnest((i.indkey::int2[])[0:cardinality(co.conkey) - 1]) x))),
        i.indisvalid, am.amname::text, pg_catalog.pg_get_expr(i.indpred, i.indrelid),
        i.indkey::int2[], COALESCE(io.idx_blks_hit, 0), COALESCE(io.idx_blks_read, 0)
    FROM pg_catalog.pg_stat_user_indexes s
    JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid
    JOIN pg_catalog.pg_class c ON c.oid = s.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = c.relam
    LEFT JOIN pg_catalog.pg_statio_user_indexes io ON io.indexrelid = s.indexrelid
    ORDER BY 1, 2, 3";

const TABLES: &str =
    "SELECT t.schemaname::text, t.relname::text, t.seq_scan, COALESCE(t.idx_scan, 0),
        t.n_live_tup, t.n_dead_tup, t.n_mod_since_analyze,
        (t.last_analyze IS NULL AND t.last_autoanalyze IS NULL),
        COALESCE(io.heap_blks_hit, 0), COALESCE(io.heap_blks_read, 0)
    FROM pg_catalog.pg_stat_user_tables t
    LEFT JOIN pg_catalog.pg_statio_user_tables io ON io.relid = t.relid
    ORDER BY 1, 2";

pub async fn indexes(client: &Client) -> Result<Vec<IndexRow>, tokio_postgres::Error> {
    let rows = client.query(INDEXES, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| IndexRow {
            schema: r.get(0),
            table: r.get(1),
            index: r.get(2),
            scans: r.get(3),
            size: r.get(4),
            protected: r.get(5),
            valid: r.get(6),
            method: r.get(7),
            predicate: r.get(8),
            keys: r.get(9),
            blks_hit: r.get(10),
            blks_read: r.get(11),
        })
        .collect())
}

fn qualified(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// Drop candidates. `scans_seen` is, per `schema.index`, the scans counted over the
/// observation (from the stored snapshots), and `observed_secs` its length.
pub fn drops(
    database: &str,
    rows: &[IndexRow],
    scans_seen: &HashMap<String, i64>,
    observed_secs: u64,
    config: &AdvisorConfig,
) -> Vec<DropCandidate> {
    let mut out = Vec::new();
    let window = config.unused_after.as_secs();
    let days = |s: u64| s as f64 / 86_400.0;
    for r in rows {
        let name = qualified(&r.schema, &r.index);
        let drop = |reason, evidence: String, confirmed| DropCandidate {
            database: database.to_string(),
            table: qualified(&r.schema, &r.table),
            index: name.clone(),
            reason,
            evidence,
            sql: format!("DROP INDEX CONCURRENTLY {name};"),
            size_bytes: r.size,
            confirmed,
        };
        if !r.valid {
            out.push(drop("invalid", "the index is marked invalid (a failed CREATE INDEX CONCURRENTLY?); rebuild or drop it".into(), true));
            continue;
        }
        if r.protected {
            continue;
        }
        if let Some(wider) = rows.iter().find(|o| duplicates(r, o)) {
            let evidence = format!(
                "its columns are a prefix of {} (same method and predicate); {} wasted",
                qualified(&wider.schema, &wider.index),
                size(r.size)
            );
            out.push(drop("duplicate", evidence, true));
            continue;
        }
        let seen = scans_seen.get(&name).copied().unwrap_or(r.scans);
        if seen == 0 {
            let evidence = format!(
                "0 scans over {:.1} days observed (window {:.0} days); {} on disk, and every write maintains it",
                days(observed_secs),
                days(window),
                size(r.size)
            );
            out.push(drop("unused", evidence, observed_secs >= window));
        }
    }
    out
}

/// `a` duplicates `b`: same table, method and predicate, `a`'s keys a prefix of `b`'s
/// (exact copies: the later name is the duplicate).
fn duplicates(a: &IndexRow, b: &IndexRow) -> bool {
    if a.index == b.index || a.schema != b.schema || a.table != b.table {
        return false;
    }
    let same = a.method == b.method && a.predicate == b.predicate;
    let prefix =
        a.keys.len() <= b.keys.len() && b.keys.starts_with(&a.keys) && !a.keys.contains(&0);
    let exact = a.keys == b.keys;
    // Of two exact copies, the later name is the duplicate (unless the other one is
    // protected, which then always wins).
    let other_kept = !exact || a.index > b.index || b.protected;
    same && prefix && other_kept
}

#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
pub async fn findings(
    client: &Client,
    database: &str,
    indexes: &[IndexRow],
    config: &AdvisorConfig,
) -> Result<Vec<Finding>, tokio_postgres::Error> {
    let mut out = Vec::new();
    let target = config.hit_rate_target;
    let mut finding = |kind, object: String, detail: String| {
        out.push(Finding {
            database: database.to_string(),
            kind,
            object,
            detail,
        })
    };
    for r in client.query(TABLES, &[]).await? {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        let name = qualified(&schema, &table);
        let (seq, idx, live, dead, modified): (i64, i64, i64, i64, i64) =
            (r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
        let never_analyzed: bool = r.get(7);
        let (hit, read): (i64, i64) = (r.get(8), r.get(9));
        if live >= config.seq_scan_min_rows && seq > idx {
            finding(
                "seq_scans",
                name.clone(),
                format!("{live} rows, {seq} sequential scans against {idx} index scans"),
            );
        }
        if let Some(rate) = rate(hit, read) {
            if rate < target {
                finding(
                    "hit_rate",
                    name.clone(),
                    format!(
                        "table hit rate {:.1}% (target {:.0}%)",
                        rate * 100.0,
                        target * 100.0
                    ),
                );
            }
        }
        if dead > 50 && dead as f64 > 0.2 * live as f64 {
            finding(
                "vacuum",
                name.clone(),
                format!("{dead} dead rows against {live} live: VACUUM {name};"),
            );
        }
        if live > 0 && (never_analyzed || modified as f64 > 0.1 * live as f64 + 50.0) {
            finding(
                "analyze",
                name.clone(),
                format!("{modified} rows changed since the last ANALYZE: ANALYZE {name};"),
            );
        }
    }
    for i in indexes {
        if let Some(rate) = rate(i.blks_hit, i.blks_read) {
            if rate < target {
                let name = qualified(&i.schema, &i.index);
                finding(
                    "hit_rate",
                    name,
                    format!(
                        "index hit rate {:.1}% (target {:.0}%)",
                        rate * 100.0,
                        target * 100.0
                    ),
                );
            }
        }
    }
    Ok(out)
}

/// Hit rate once there were enough reads to judge (100 blocks).
fn rate(hit: i64, read: i64) -> Option<f64> {
    let total = hit + read;
    (total >= 100).then(|| hit as f64 / total as f64)
}
