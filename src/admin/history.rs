//! The last hour in memory, one point per completed minute, for the web console's
//! charts: `GET /api/minutes` (all statements: calls, errors, p50/p95/p99, clients
//! waiting, servers in use against pool size) and `GET /api/minutes/{fingerprint}`
//! (calls, errors, mean and p95 per (database, user) of one fingerprint).
//!
//! A sampler reads the pools and clients every [`SAMPLE_EVERY`] (keeping the minute's
//! highest values, so a burst between samples of a minute still shows) and, when a
//! statistics minute completes, reads that minute from the registry: the merged
//! aggregates for the overview, one row per active entry for the per-query series.
//! At most [`MINUTES`] points are kept per series; a fingerprint idle for an hour is
//! dropped. The registry is read on a blocking thread.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::params::{Params, RawParams};
use super::rows::{fingerprint_hex, ms, rfc3339};
use super::Ctx;
use crate::state::Running;
use crate::stats::StatKey;

/// Points kept per series: one hour.
pub const MINUTES: usize = 60;
/// How often pools and clients are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// One minute of everything.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    /// Statistics minute (minutes since the proxy started).
    pub minute: u64,
    /// Unix seconds at the minute's start.
    pub at: u64,
    pub calls: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub clients_waiting: u64,
    pub servers_active: u64,
    pub pool_size: u64,
}

/// One minute of one (database, user, fingerprint), 20 bytes: with 5,000 shapes busy
/// every minute the per-query rings hold 6 MB (plus one key per shape). Counts
/// saturate at `u32::MAX`; a p95 over 71 minutes shows as 71 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryPoint {
    pub minute: u32,
    pub calls: u32,
    pub errors: u32,
    pub mean_us: f32,
    pub p95_us: u32,
}

fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Pool and client gauges: the highest seen in the minute being collected.
#[derive(Debug, Clone, Copy, Default)]
struct Gauges {
    clients_waiting: u64,
    servers_active: u64,
    pool_size: u64,
}

#[derive(Default)]
struct Inner {
    points: VecDeque<Point>,
    queries: HashMap<StatKey, VecDeque<QueryPoint>>,
    gauges: Gauges,
    /// The last statistics minute taken in.
    last_minute: Option<u64>,
}

/// The rings; one per admin server.
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

impl History {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the highest gauges of the minute being collected.
    fn observe(&self, g: Gauges) {
        let mut inner = self.lock();
        let m = &mut inner.gauges;
        m.clients_waiting = m.clients_waiting.max(g.clients_waiting);
        m.servers_active = m.servers_active.max(g.servers_active);
        m.pool_size = m.pool_size.max(g.pool_size);
    }

    /// Appends a completed minute (and its queries), dropping what is over an hour old.
    pub fn push(&self, mut point: Point, queries: Vec<(StatKey, QueryPoint)>) {
        let mut inner = self.lock();
        let gauges = std::mem::take(&mut inner.gauges);
        point.clients_waiting = gauges.clients_waiting;
        point.servers_active = gauges.servers_active;
        point.pool_size = gauges.pool_size;
        inner.last_minute = Some(point.minute);
        if inner.points.len() == MINUTES {
            inner.points.pop_front();
        }
        inner.points.push_back(point);
        for (key, q) in queries {
            let ring = inner.queries.entry(key).or_default();
            if ring.len() == MINUTES {
                ring.pop_front();
            }
            ring.push_back(q);
        }
        let oldest = small(point.minute.saturating_sub(MINUTES as u64 - 1));
        inner
            .queries
            .retain(|_, ring| ring.back().is_some_and(|q| q.minute >= oldest));
    }

    pub fn points(&self) -> Vec<Point> {
        self.lock().points.iter().copied().collect()
    }

    /// Every (database, user) series of `fingerprint`, sorted by database and user.
    pub fn query(
        &self,
        fingerprint: u64,
        database: Option<&str>,
    ) -> Vec<(StatKey, Vec<QueryPoint>)> {
        let inner = self.lock();
        let mut found: Vec<(StatKey, Vec<QueryPoint>)> = (inner.queries.iter())
            .filter(|(k, _)| k.fingerprint == fingerprint)
            .filter(|(k, _)| database.is_none_or(|d| d == k.database))
            .map(|(k, ring)| (k.clone(), ring.iter().copied().collect()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    fn last_minute(&self) -> Option<u64> {
        self.lock().last_minute
    }
}

/// Reads pools and clients now.
fn gauges(state: &Running) -> Gauges {
    let (pools, clients) = state.status();
    // Servers being tested count as in use here, as they are not in the idle list.
    let in_use = |p: &crate::pool::Status| (p.servers.active + p.servers.testing) as u64;
    Gauges {
        clients_waiting: clients.values().map(|c| c.waiting).sum(),
        servers_active: pools.iter().map(in_use).sum(),
        pool_size: pools.iter().map(|p| p.size as u64).sum(),
    }
}

/// Samples until `stop` fires.
pub async fn run(
    state: Arc<Running>,
    history: Arc<History>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        history.observe(gauges(&state));
        let (state, history) = (state.clone(), history.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || take_minutes(&state, &history)).await {
            tracing::warn!(error = %e, "console history sampler failed");
        }
    }
}

/// Takes in every completed minute not yet taken (the registry keeps the last 5).
fn take_minutes(state: &Running, history: &History) {
    let now = state.stats_now();
    let Some(last_complete) = (now / 60).checked_sub(1) else {
        return;
    };
    let first = history
        .last_minute()
        .map_or(last_complete, |m| m + 1)
        .max(last_complete.saturating_sub(4));
    let wall_now = super::rows::unix_now();
    for minute in first..=last_complete {
        let at = wall_now.saturating_sub(now - minute * 60);
        let (point, queries) = read_minute(state, minute, now, at);
        tracing::debug!(
            minute,
            calls = point.calls,
            shapes = queries.len(),
            "console history: minute taken in"
        );
        history.push(point, queries);
    }
}

fn read_minute(
    state: &Running,
    minute: u64,
    now: u64,
    at: u64,
) -> (Point, Vec<(StatKey, QueryPoint)>) {
    let mut point = Point {
        minute,
        at,
        ..Point::default()
    };
    let Some(measure) = state.measure.as_ref() else {
        return (point, Vec::new());
    };
    let total = measure.registry.minute_total(minute, now);
    point.calls = total.calls;
    point.errors = total.errors;
    (point.p50_us, point.p95_us, point.p99_us) = (total.p50_us, total.p95_us, total.p99_us);
    let queries = (measure.registry.minute(minute, now).into_iter())
        .map(|s| {
            let q = QueryPoint {
                minute: small(minute),
                calls: small(s.calls),
                errors: small(s.errors),
                mean_us: s.mean_us as f32,
                p95_us: small(s.p95_us),
            };
            (s.key, q)
        })
        .collect();
    (point, queries)
}

/// `GET /api/minutes`.
pub async fn overview(
    State(ctx): State<Arc<Ctx>>,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    Params::new(raw)?.finish(&[])?;
    let points: Vec<Value> = (ctx.history.points().iter())
        .map(|p| {
            json!({
                "at": rfc3339(p.at),
                "calls": p.calls,
                "tps": p.calls as f64 / 60.0,
                "errors": p.errors,
                "p50_ms": ms(p.p50_us),
                "p95_ms": ms(p.p95_us),
                "p99_ms": ms(p.p99_us),
                "clients_waiting": p.clients_waiting,
                "servers_active": p.servers_active,
                "pool_size": p.pool_size,
            })
        })
        .collect();
    let sampled = ctx.state.stats_now();
    Ok(Json(json!({
        "interval_s": 60,
        "stats": ctx.state.measure.is_some(),
        "next_point_in_s": 60 - sampled % 60 + SAMPLE_EVERY.as_secs(),
        "points": points,
        // The result cache is not built yet: there is no hit ratio to chart.
        "cache_hit_ratio": Value::Null,
    })))
}

/// `GET /api/minutes/{fingerprint}`; `database` narrows it to one database.
pub async fn query(
    State(ctx): State<Arc<Ctx>>,
    path: Result<Path<String>, PathRejection>,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    let fingerprint = super::queries::path_fingerprint(path)?;
    let mut p = Params::new(raw)?;
    let database = p.filter("database")?;
    p.finish(&["database"])?;
    // Wall-clock start of a statistics minute.
    let (now, wall) = (ctx.state.stats_now(), super::rows::unix_now());
    let wall_at = |minute: u64| wall.saturating_sub(now.saturating_sub(minute * 60));
    let series: Vec<Value> = (ctx.history.query(fingerprint, database.as_deref()).iter())
        .map(|(key, points)| {
            let points: Vec<Value> = (points.iter())
                .map(|q| {
                    json!({
                        "at": rfc3339(wall_at(u64::from(q.minute))),
                        "calls": q.calls,
                        "errors": q.errors,
                        "mean_ms": (f64::from(q.mean_us).round() / 1000.0),
                        "p95_ms": ms(u64::from(q.p95_us)),
                    })
                })
                .collect();
            json!({ "database": key.database, "user": key.user, "points": points })
        })
        .collect();
    Ok(Json(json!({
        "fingerprint": fingerprint_hex(fingerprint),
        "interval_s": 60,
        "series": series,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fp: u64) -> StatKey {
        StatKey {
            database: "db".into(),
            user: "u".into(),
            fingerprint: fp,
        }
    }

    fn qp(minute: u32) -> QueryPoint {
        QueryPoint {
            minute,
            calls: 1,
            errors: 0,
            mean_us: 1.0,
            p95_us: 1,
        }
    }

    #[test]
    fn keeps_an_hour_and_the_minutes_highest_gauges() {
        let h = History::default();
        h.observe(Gauges {
            clients_waiting: 3,
            servers_active: 1,
            pool_size: 4,
        });
        h.observe(Gauges {
            clients_waiting: 1,
            servers_active: 2,
            pool_size: 4,
        });
        h.push(Point::default(), vec![(key(1), qp(0)), (key(2), qp(0))]);
        let first = h.points()[0];
        assert_eq!(
            (first.clients_waiting, first.servers_active, first.pool_size),
            (3, 2, 4)
        );
        for minute in 1..=MINUTES as u64 {
            let point = Point {
                minute,
                ..Point::default()
            };
            h.push(point, vec![(key(1), qp(minute as u32))]);
        }
        let points = h.points();
        assert_eq!(points.len(), MINUTES);
        assert_eq!((points[0].minute, points[0].clients_waiting), (1, 0));
        assert_eq!(h.query(1, None)[0].1.len(), MINUTES);
        // Fingerprint 2 ran only in minute 0, which is now over an hour old.
        assert!(h.query(2, None).is_empty());
        assert!(h.query(1, Some("other")).is_empty());
        assert_eq!(h.last_minute(), Some(MINUTES as u64));
    }
}
