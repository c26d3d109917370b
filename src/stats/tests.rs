//! Registry tests: entries, eviction, aggregates, concurrency, and the (ignored)
//! timing and memory measurements.

use std::sync::Arc;
use std::time::Instant;

use super::*;

fn key(db: &str, fp: u64) -> StatKey {
    StatKey {
        database: db.to_owned(),
        user: "app".to_owned(),
        fingerprint: fp,
    }
}

fn meta(command: CommandKind) -> QueryMeta {
    QueryMeta {
        normalized: format!("{} ...", command.as_str()),
        command,
        command_label: command.as_str().to_owned(),
        tables: vec!["t".to_owned()],
    }
}

/// Within the 1% quantile bound.
fn close(got: u64, exact: u64) -> bool {
    got.abs_diff(exact) * 100 <= exact
}

const ERR_23: Outcome = Outcome::Error {
    sqlstate: *b"23505",
};

#[test]
fn entry_is_resolved_once() {
    let reg = Registry::new(10);
    let a = reg.entry(&key("db", 1), || meta(CommandKind::Select), 0);
    let b = reg.entry(&key("db", 1), || unreachable!("exists"), 5);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(reg.tracked(), 1);
    reg.record(&a, 250, 3, Outcome::Ok, 10);
    reg.record(&b, 750, 1, ERR_23, 20);
    let rows = reg.snapshot(Window::Min1, 20);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.calls, r.errors, r.rows, r.total_us), (2, 1, 4, 1_000));
    assert_eq!((r.min_us, r.max_us, r.mean_us), (250, 750, 500.0));
    assert_eq!(r.p50_us, 250);
    assert!(close(r.p99_us, 750), "{}", r.p99_us);
    assert_eq!(r.errors_by_class, [("23".to_owned(), 1)]);
    assert_eq!((r.first_seen, r.last_seen), (0, 20));
    assert_eq!(r.meta.command_label, "SELECT");
}

#[test]
fn eviction_drops_the_least_valuable() {
    let reg = Registry::new(3);
    let now = 1_000;
    let entries: Vec<_> = (1..=3)
        .map(|fp| reg.entry(&key("db", fp), || meta(CommandKind::Select), now))
        .collect();
    // Entry 2 spent the least time in the last hour; 1 and 3 more.
    for (e, us) in entries.iter().zip([5_000, 10, 9_000]) {
        reg.record(e, us, 1, Outcome::Ok, now);
    }
    let fourth = reg.entry(&key("db", 4), || meta(CommandKind::Insert), now + 1);
    assert_eq!((reg.tracked(), reg.evicted()), (3, 1));
    let fps: Vec<u64> = reg
        .snapshot(Window::All, now + 1)
        .iter()
        .map(|r| r.key.fingerprint)
        .collect();
    assert_eq!(fps, [3, 1, 4], "sorted by total time");
    assert!(entries[1].is_evicted() && !entries[0].is_evicted() && !fourth.is_evicted());
    // The evicted Arc still takes records; they reach only the aggregate.
    reg.record(&entries[1], 20, 1, Outcome::Ok, now + 2);
    assert!(reg.get(None, 2, now + 2).is_empty());
    let agg = reg.aggregates(Window::All, now + 2);
    assert_eq!(agg[0].command, CommandKind::Select);
    assert_eq!((agg[0].calls, agg[0].total_us), (4, 14_030));
}

#[test]
fn ties_evict_the_oldest() {
    let reg = Registry::new(2);
    let a = reg.entry(&key("db", 1), || meta(CommandKind::Select), 0);
    let b = reg.entry(&key("db", 2), || meta(CommandKind::Select), 0);
    // Both idle for over an hour: zero value, so last_seen decides.
    reg.record(&a, 100, 0, Outcome::Ok, 50);
    reg.record(&b, 100, 0, Outcome::Ok, 10);
    reg.entry(&key("db", 3), || meta(CommandKind::Select), 10_000);
    assert!(b.is_evicted() && !a.is_evicted());
}

#[test]
fn aggregates_per_database_and_kind() {
    let reg = Registry::new(100);
    let kinds = [CommandKind::Select, CommandKind::Update, CommandKind::Other];
    for (fp, kind) in kinds.into_iter().enumerate() {
        for db in ["a", "b"] {
            // Two users with the same fingerprint feed the same aggregate.
            for user in ["u1", "u2"] {
                let k = StatKey {
                    user: user.to_owned(),
                    ..key(db, fp as u64)
                };
                let e = reg.entry(&k, || meta(kind), 0);
                for i in 1..=100 {
                    let outcome = if i % 10 == 0 { ERR_23 } else { Outcome::Ok };
                    reg.record(&e, i * (fp as u64 + 1), 2, outcome, 30);
                }
            }
        }
    }
    let aggs = reg.aggregates(Window::Min5, 60);
    let got: Vec<(&str, CommandKind)> = aggs
        .iter()
        .map(|a| (a.database.as_str(), a.command))
        .collect();
    let want: Vec<(&str, CommandKind)> = ["a", "b"]
        .into_iter()
        .flat_map(|db| kinds.map(|k| (db, k)))
        .collect();
    assert_eq!(got, want);
    for a in &aggs {
        let scale = kinds.iter().position(|&k| k == a.command).unwrap() as u64 + 1;
        assert_eq!((a.calls, a.errors, a.rows), (200, 20, 400));
        assert_eq!(
            (a.total_us, a.min_us, a.max_us),
            (2 * 5_050 * scale, scale, 100 * scale)
        );
        assert!(
            close(a.p50_us, 50 * scale) && close(a.p99_us, 99 * scale),
            "{a:?}"
        );
        assert_eq!(a.errors_by_class, [("23".to_owned(), 20)]);
    }
    let detail = reg.get(Some("a"), 1, 60);
    assert_eq!(detail.len(), 2, "one per user");
    let windows: Vec<Window> = detail[0].windows.iter().map(|(w, _)| *w).collect();
    assert_eq!(windows, Window::LIST);
    assert!(detail[0].windows.iter().all(|(_, s)| s.calls == 100));
    assert_eq!(reg.get(None, 1, 60).len(), 4);
}

#[test]
fn concurrent_records_are_exact() {
    let reg = Registry::new(4);
    let shared: Vec<_> = (0..2)
        .map(|fp| reg.entry(&key("db", fp), || meta(CommandKind::Select), 0))
        .collect();
    // Worth far more than the churn entries below, so eviction never picks them.
    shared
        .iter()
        .for_each(|e| reg.record(e, 1_000_000, 0, Outcome::Ok, 0));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (reg, shared) = (&reg, &shared);
            s.spawn(move || {
                for i in 0..100_000u64 {
                    let now = i / 1_000; // time moves: rollovers race with records
                    let e = &shared[(i % 2) as usize];
                    reg.record(e, 1 + (i + t) % 1_000, 1, Outcome::Ok, now);
                }
            });
        }
        // Reads and eviction churn at the same time.
        s.spawn(|| {
            for i in 0..200u64 {
                reg.snapshot(Window::Min1, i / 2);
                reg.aggregates(Window::Min5, i / 2);
                reg.entry(&key("churn", i), || meta(CommandKind::Other), i / 2);
            }
        });
    });
    assert!(reg.tracked() <= 4 && reg.evicted() >= 198);
    for (fp, e) in shared.iter().enumerate() {
        assert!(!e.is_evicted());
        let detail = reg.get(Some("db"), fp as u64, 100);
        let all = &detail[0].windows[4].1;
        assert_eq!((all.calls, all.rows), (200_001, 200_000));
        assert_eq!(e.last_seen(), 99);
    }
    let agg = reg.aggregates(Window::All, 100);
    let select = agg.iter().find(|a| a.database == "db").unwrap();
    assert_eq!(select.calls, 400_002);
    let expected: u64 = (0..4u64)
        .flat_map(|t| (0..100_000u64).map(move |i| 1 + (i + t) % 1_000))
        .sum();
    assert_eq!(select.total_us, expected + 2_000_000);
}

/// Mean ns per record when `threads` threads record `n` each, thread `t` into
/// `entries[t % len]`, over ~6 minutes of simulated time (so rollovers are included).
fn time_records(reg: &Registry, entries: &[Arc<QueryStats>], threads: usize, n: u64) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let e = &entries[t % entries.len()];
            s.spawn(move || {
                for i in 0..n {
                    let us = 100 + (i * 7919) % 50_000;
                    reg.record(e, us, 1, Outcome::Ok, i * 360 / n);
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / n as f64
}

#[test]
#[ignore = "timing: cargo test --release --lib stats -- --ignored --nocapture"]
fn record_cost() {
    let reg = Registry::default();
    let entries: Vec<_> = (0..2)
        .map(|fp| reg.entry(&key("db", fp), || meta(CommandKind::Select), 0))
        .collect();
    let n = 10_000_000;
    let one = time_records(&reg, &entries[..1], 1, n);
    println!("record: {one:.1} ns per call, 1 thread (entry + aggregate)");
    let apart = time_records(&reg, &entries, 2, n / 2);
    println!("record: {apart:.1} ns of wall time per call per thread, 2 threads, 2 entries");
    let shared = time_records(&reg, &entries[..1], 2, n / 2);
    println!("record: {shared:.1} ns of wall time per call per thread, 2 threads, 1 entry");
    assert_eq!(reg.aggregates(Window::All, 400)[0].calls, 3 * n);
}

#[test]
#[ignore = "measurement: cargo test --release --lib stats -- --ignored --nocapture"]
fn memory_per_entry() {
    for (every, per_minute) in [(10, 1), (1, 1u64), (1, 10), (1, 100), (1, 1_000)] {
        let reg = Registry::new(10);
        let e = reg.entry(&key("db", 1), || meta(CommandKind::Select), 0);
        let mut x = 12345u64;
        for minute in (0..25 * 60).step_by(every) {
            for _ in 0..per_minute {
                // xorshift → sum of 4 uniforms ≈ normal → log-normal, median ~2 ms.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let z = (0..4)
                    .map(|k| ((x >> (16 * k)) & 0xffff) as f64 / 65536.0)
                    .sum::<f64>();
                let us = 2_000.0 * ((z - 2.0) * 1.7).exp();
                reg.record(&e, us as u64, 1, Outcome::Ok, minute * 60);
            }
        }
        let kb = e.heap_bytes() as f64 / 1024.0;
        println!("{per_minute:>5} calls per {every:>2} min for 25 h: {kb:.1} KB per entry");
    }
    // The worst case: every minute touches every bucket.
    let reg = Registry::new(10);
    let e = reg.entry(&key("db", 1), || meta(CommandKind::Select), 0);
    for minute in 0..25 * 60 {
        for i in 0..BUCKETS {
            reg.record(
                &e,
                histogram::representative(i),
                1,
                Outcome::Ok,
                minute * 60,
            );
        }
    }
    let kb = e.heap_bytes() as f64 / 1024.0;
    println!("all {BUCKETS} buckets every minute for 25 h: {kb:.1} KB per entry");
}

#[test]
fn registry_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Registry>();
    shared::<QueryStats>();
}
