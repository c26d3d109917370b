//! The lookup/fill cycle without a server: verdicts injected, listener forced.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::analyze::Analysis;
use super::config::{CacheConfig, CacheMode};
use super::reason::{Bypass, Refusal, Source};
use super::*;

fn cache(mode: CacheMode) -> Cache {
    let cache = Cache::new(&CacheConfig {
        mode,
        max_entry_bytes: 64,
        ..CacheConfig::default()
    });
    cache.listeners.force("db", true);
    cache
}

fn req(text: &'static str) -> Request<'static> {
    Request {
        database: "db",
        session_user: "app",
        current_role: "app",
        search_path: "public",
        settings: [0; 32],
        text,
        fingerprint: 42,
        param_types: &[],
        param_formats: &[],
        params: &[],
        result_formats: &[],
    }
}

fn eligible(cache: &Cache, r: &Request<'_>, tables: &[u32]) {
    let analysis = Analysis {
        tables: tables.to_vec().into(),
        names: vec!["public.t".into()],
        named: vec![("t".into(), tables[0])],
    };
    c_register(cache, r.database, &analysis);
    cache.verdicts.put_for(r, Ok(Arc::new(analysis)));
}

fn c_register(cache: &Cache, database: &str, analysis: &Analysis) {
    cache.register_names(database, analysis);
}

fn miss(outcome: Outcome) -> Ticket {
    match outcome {
        Outcome::Miss(t) => t,
        _ => panic!("expected a miss"),
    }
}

fn rows() -> Bytes {
    Bytes::from_static(b"T...D...C...")
}

#[test]
fn a_filled_miss_hits_until_its_table_moves() {
    let c = cache(CacheMode::Auto);
    let r = req("SELECT * FROM t");
    eligible(&c, &r, &[10, 11]);
    let t = miss(c.lookup(&r));
    c.fill(t, Some(rows()), Duration::from_millis(3));
    assert!(matches!(c.lookup(&r), Outcome::Hit(b) if b == rows()));
    c.invalidate_tables("db", &[12], Source::Notify);
    assert!(matches!(c.lookup(&r), Outcome::Hit(_)), "another table");
    c.invalidate_tables("other", &[11], Source::Notify);
    assert!(matches!(c.lookup(&r), Outcome::Hit(_)), "another database");
    c.invalidate_tables("db", &[11], Source::Proxy);
    let t = miss(c.lookup(&r));
    c.fill(t, Some(rows()), Duration::ZERO);
    c.invalidate_database("db", Source::Ddl);
    assert!(
        matches!(c.lookup(&r), Outcome::Skip),
        "DDL drops the verdicts too"
    );
    assert_eq!(c.stats.hits.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[test]
fn the_fill_race_is_lost_by_the_old_result() {
    let c = cache(CacheMode::Auto);
    let r = req("SELECT * FROM t");
    eligible(&c, &r, &[10]);
    let t = miss(c.lookup(&r));
    // A write commits and is invalidated while the miss is at the server.
    c.invalidate_tables("db", &[10], Source::Notify);
    c.fill(t, Some(rows()), Duration::ZERO);
    assert!(matches!(c.lookup(&r), Outcome::Miss(_)));
}

#[test]
fn identical_misses_coalesce_and_large_or_failed_ones_are_not_stored() {
    let c = cache(CacheMode::Auto);
    let r = req("SELECT * FROM t");
    eligible(&c, &r, &[10]);
    let t = miss(c.lookup(&r));
    let Outcome::Follow(flight, _) = c.lookup(&r) else {
        panic!("second identical miss follows")
    };
    c.fill(t, Some(Bytes::from(vec![0u8; 65])), Duration::ZERO);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(flight.wait(Duration::from_secs(1))), None);
    let t = miss(c.lookup(&r));
    drop(t);
    let t = miss(c.lookup(&r));
    c.fill(t, None, Duration::ZERO);
    assert!(matches!(c.lookup(&r), Outcome::Miss(_)));
}

#[test]
fn refusals_bypasses_and_rules_go_to_the_server() {
    let c = cache(CacheMode::Rules);
    let r = req("SELECT * FROM t");
    assert!(matches!(c.lookup(&r), Outcome::Skip), "not analyzed yet");
    eligible(&c, &r, &[10]);
    assert!(matches!(c.lookup(&r), Outcome::Skip), "no rule matches");
    let hinted = req("/* pgsidecar:cache ttl=5s */ SELECT * FROM t");
    eligible(&c, &hinted, &[10]);
    assert!(matches!(c.lookup(&hinted), Outcome::Miss(_)));
    let refused = req("SELECT * FROM t FOR UPDATE");
    c.verdicts.put_for(&refused, Err(Refusal::LockingClause));
    assert!(matches!(c.lookup(&refused), Outcome::Skip));
    c.listeners.force("db", false);
    assert!(matches!(c.lookup(&hinted), Outcome::Skip), "listener down");
    let s = &c.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n(&s.bypass[Bypass::ListenerDown.index()]), 1);
    assert_eq!(n(&s.misses[Refusal::NoRule.index()]), 1);
    assert_eq!(n(&s.misses[Refusal::LockingClause.index()]), 1);
    assert!(session_opts_out(" OFF ") && !session_opts_out("on"));
}

#[test]
fn keys_separate_roles() {
    let c = cache(CacheMode::Auto);
    let a = req("SELECT * FROM t");
    let b = Request {
        current_role: "admin",
        ..a
    };
    eligible(&c, &a, &[10]);
    eligible(&c, &b, &[10]);
    let t = miss(c.lookup(&a));
    c.fill(t, Some(rows()), Duration::ZERO);
    assert!(matches!(c.lookup(&a), Outcome::Hit(_)));
    assert!(matches!(c.lookup(&b), Outcome::Miss(_)));
}
