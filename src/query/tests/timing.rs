//! Timings of the hit and miss paths, printed by
//! `cargo test --release --lib query::tests::timing -- --ignored --nocapture`.

use crate::query::{split_statements, Analyzer};
use std::hint::black_box;
use std::time::Instant;

const PGBENCH: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;";

/// Nanoseconds per call of `f`, the best of several batches: the machine is shared, and
/// the minimum is the least disturbed by other processes.
fn per_iteration(iterations: u32, mut f: impl FnMut(u32)) -> f64 {
    const BATCHES: u32 = 20;
    let batch = (iterations / BATCHES).max(1);
    (0..BATCHES)
        .map(|b| {
            let start = Instant::now();
            for i in 0..batch {
                f(b * batch + i);
            }
            start.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn hit_and_miss_paths() {
    let analyzer = Analyzer::new(10_000);
    analyzer.analyze_text(PGBENCH);
    let split_ns = per_iteration(1_000_000, |_| {
        black_box(split_statements(black_box(PGBENCH)).next());
    });
    let hit_ns = per_iteration(1_000_000, |_| {
        for stmt in split_statements(black_box(PGBENCH)) {
            black_box(analyzer.analyze(&stmt));
        }
    });
    let queries: Vec<String> = (0..2000)
        .map(|i| format!("SELECT abalance, c{i} FROM pgbench_accounts WHERE aid = 12345"))
        .collect();
    let miss_ns = per_iteration(2000, |i| {
        black_box(analyzer.analyze_text(&queries[i as usize]));
    });
    let direct_ns = per_iteration(2000, |i| {
        let sql = &queries[i as usize];
        black_box(pg_query::summary(sql, 0, -1).ok());
        black_box(pg_query::fingerprint(sql, 0, 0).ok());
        black_box(pg_query::normalize(sql).ok());
    });
    println!("split+hash:            {split_ns:8.0} ns");
    println!("split+hash+cache hit:  {hit_ns:8.0} ns");
    println!("miss (pool thread):    {:8.1} µs", miss_ns / 1000.0);
    println!("  pg_query calls only: {:8.1} µs", direct_ns / 1000.0);
    assert_eq!(analyzer.misses(), 2001);
}
