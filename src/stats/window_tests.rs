//! Tests of window boundaries, rollover and exact counts for `Windowed`.

use super::*;
use crate::stats::counters::class_key;
use crate::stats::WindowStats;

fn read(w: &mut Windowed, win: Window, now: u64) -> WindowStats {
    let mut acc = Acc::new();
    w.read(win, now, &mut acc);
    WindowStats::from_acc(&acc)
}

fn calls(w: &mut Windowed, now: u64) -> [u64; 5] {
    Window::LIST.map(|win| read(w, win, now).calls)
}

#[test]
fn recent_minute_only_in_1m() {
    let mut w = Windowed::new(0);
    for _ in 0..3 {
        w.record(0, 100, 1, None);
    }
    for _ in 0..2 {
        w.record(120, 5_000, 1, None);
    }
    // 1m, 5m, 1h, 24h, all
    assert_eq!(calls(&mut w, 120), [2, 5, 5, 5, 5]);
    let m1 = read(&mut w, Window::Min1, 130);
    assert_eq!((m1.min_us, m1.max_us, m1.p50_us), (5_000, 5_000, 5_000));
    let m5 = read(&mut w, Window::Min5, 130);
    assert_eq!((m5.min_us, m5.max_us, m5.p50_us), (100, 5_000, 100));
}

#[test]
fn windows_roll_off() {
    let mut w = Windowed::new(0);
    w.record(0, 1_000, 0, None);
    w.record(59, 1_000, 0, None);
    // The 1m window covers the current minute and the one before it.
    assert_eq!(calls(&mut w, 119), [2, 2, 2, 2, 2]);
    assert_eq!(calls(&mut w, 120), [0, 2, 2, 2, 2]);
    assert_eq!(calls(&mut w, 6 * 60 - 1), [0, 2, 2, 2, 2]);
    assert_eq!(calls(&mut w, 6 * 60), [0, 0, 2, 2, 2]);
    assert_eq!(calls(&mut w, 65 * 60 - 1), [0, 0, 2, 2, 2]);
    assert_eq!(calls(&mut w, 2 * 3600), [0, 0, 0, 2, 2]);
    assert_eq!(calls(&mut w, 25 * 3600 - 1), [0, 0, 0, 2, 2]);
    assert_eq!(calls(&mut w, 25 * 3600), [0, 0, 0, 0, 2]);
    // Old slots were pruned, and recording after a long gap starts clean.
    assert!(w.tiers.iter().all(|t| t.slots.is_empty()));
    w.record(30 * 3600, 7, 0, None);
    assert_eq!(calls(&mut w, 30 * 3600), [1, 1, 1, 1, 3]);
    let all = read(&mut w, Window::All, 30 * 3600);
    assert_eq!((all.min_us, all.max_us, all.total_us), (7, 1_000, 2_007));
}

#[test]
fn day_of_records_rolls_off_hour_by_hour() {
    let mut w = Windowed::new(0);
    // One call per minute for 30 hours, duration = the hour it ran in (+1).
    for minute in 0..30 * 60 {
        w.record(minute * 60 + 7, minute / 60 + 1, 1, None);
    }
    let now = 30 * 3600 - 1;
    let day = read(&mut w, Window::Hour24, now);
    // Current hour (29) plus hours 5..=28: 25 hours of 60 calls.
    assert_eq!(day.calls, 25 * 60);
    assert_eq!((day.min_us, day.max_us), (6, 30));
    let hour = read(&mut w, Window::Hour1, now);
    // Current 5-minute block plus 12 before it: 65 minutes.
    assert_eq!(hour.calls, 65);
    assert_eq!(read(&mut w, Window::All, now).calls, 30 * 60);
    assert_eq!(read(&mut w, Window::All, now).rows, 30 * 60);
    let tier_lens: Vec<usize> = w.tiers.iter().map(|t| t.slots.len()).collect();
    assert_eq!(tier_lens, [5, 12 + 1, 24 + 1]);
}

#[test]
fn counts_are_exact() {
    let mut w = Windowed::new(1_000);
    let mut total = 0;
    for i in 0..1_000u64 {
        let now = 1_000 + i / 10;
        let class = match i % 7 {
            0 => Some(class_key(*b"23505")),
            1 => Some(class_key(*b"40001")),
            _ => None,
        };
        let d = 1 + i * 37 % 20_000;
        total += d;
        w.record(now, d, i % 3, class);
    }
    let s = read(&mut w, Window::All, 1_100);
    assert_eq!(s.calls, 1_000);
    assert_eq!(s.rows, (0..1_000u64).map(|i| i % 3).sum::<u64>());
    assert_eq!(s.total_us, total);
    assert_eq!(s.min_us, 1);
    assert_eq!(
        s.max_us,
        (0..1_000u64).map(|i| 1 + i * 37 % 20_000).max().unwrap()
    );
    assert_eq!(s.errors, 143 + 143);
    let classes = [("23".to_owned(), 143), ("40".to_owned(), 143)];
    assert_eq!(s.errors_by_class, classes);
    assert!((s.mean_us - total as f64 / 1_000.0).abs() < 1e-9);
    // The same numbers whether the minutes are still current or folded into slots.
    assert_eq!(read(&mut w, Window::Hour1, 1_100), s);
    assert_eq!(read(&mut w, Window::Hour24, 4_000), s);
}

#[test]
fn clock_behind_records_into_current() {
    let mut w = Windowed::new(600);
    w.record(600, 10, 0, None);
    w.record(500, 20, 0, None);
    assert_eq!(w.last_seen, 600);
    assert_eq!(calls(&mut w, 600), [2, 2, 2, 2, 2]);
}

#[test]
fn empty_window_is_zero() {
    let mut w = Windowed::new(0);
    assert_eq!(read(&mut w, Window::All, 0), WindowStats::default());
    assert_eq!(w.total_us(Window::Hour1, 10_000), 0);
}

#[test]
fn merged_slots_keep_the_error_bound() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(3);
    let mut w = Windowed::new(0);
    let mut samples = Vec::new();
    // Spread over 3 hours so the 24h window merges hour, 5-minute and minute data.
    for i in 0..60_000u64 {
        let v = match rng.gen_bool(0.95) {
            true => rng.gen_range(800..1_200),
            false => rng.gen_range(400_000..600_000),
        };
        samples.push(v);
        w.record(i * 3 * 3600 / 60_000, v, 0, None);
    }
    samples.sort_unstable();
    let s = read(&mut w, Window::Hour24, 3 * 3600);
    assert_eq!(s.calls, samples.len() as u64);
    let n = samples.len() as u64;
    let got = [s.p50_us, s.p95_us, s.p99_us, s.p999_us];
    for (g, permille) in got.into_iter().zip([500u64, 950, 990, 999]) {
        let exact = samples[((n * permille).div_ceil(1000) - 1) as usize];
        assert!(
            g.abs_diff(exact) * 100 <= exact,
            "p{permille}: {g} vs {exact}"
        );
    }
}
