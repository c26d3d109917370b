//! The rows the store keeps, as Rust values: what callers insert and what lists return.
//! They serialize for the JSON API: times as RFC 3339 UTC with milliseconds, durations
//! as fractional `*_ms`.
//!
//! Decoding uses `Row::get`, which panics on a type mismatch: the columns are ours, fixed
//! by `migrations/`, so a mismatch is a bug the integration tests catch, not a runtime
//! condition.

use std::time::SystemTime;

use serde::{Serialize, Serializer};
use serde_json::Value;
use tokio_postgres::Row;

use super::StoreError;

/// Largest page a list returns, whatever the caller asks for.
pub const MAX_PAGE: u32 = 1000;

/// How bad a slow statement or an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    pub(crate) fn parse(value: &str) -> Result<Level, StoreError> {
        match value {
            "warning" => Ok(Level::Warning),
            "critical" => Ok(Level::Critical),
            other => Err(unexpected("level", other)),
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A statement that crossed a slow-query threshold. The sidecar's name is added by the
/// store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowEvent {
    #[serde(serialize_with = "time")]
    pub at: SystemTime,
    pub database: String,
    pub username: String,
    pub fingerprint: String,
    pub query: String,
    pub duration_ms: f64,
    pub level: Level,
    pub application_name: Option<String>,
}

/// A query that stayed slow for `consecutive` executions in a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    #[serde(serialize_with = "time")]
    pub at: SystemTime,
    pub database: String,
    pub username: String,
    pub fingerprint: String,
    pub query: String,
    pub level: Level,
    pub consecutive: i32,
    pub duration_ms: f64,
}

/// One minute of statistics for one query shape. `at` is truncated to the minute when
/// stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    #[serde(serialize_with = "time")]
    pub at: SystemTime,
    pub database: String,
    pub username: String,
    pub fingerprint: String,
    pub query: String,
    pub command: String,
    pub calls: i64,
    pub errors: i64,
    pub rows: i64,
    pub total_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A stored row: its id and the sidecar that wrote it, around what was inserted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored<T> {
    pub id: i64,
    pub sidecar: String,
    #[serde(flatten)]
    pub row: T,
}

/// A plan to store; the capture time is the store's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewPlan {
    pub database: String,
    pub fingerprint: String,
    pub query: String,
    /// EXPLAIN (FORMAT JSON) output.
    pub plan: Value,
    /// Identifies the plan's shape; a different hash for the same query is a plan change.
    pub plan_hash: String,
    pub total_cost: f64,
    /// Set when the plan was captured with ANALYZE.
    pub actual_ms: Option<f64>,
    pub analyzed: bool,
    /// Parameter values used for the capture; private, cleared when no longer needed.
    pub params: Option<Value>,
    /// Why it was captured: `critical`, `alert`, `warning`, `manual` or `latency`
    /// (`None` for plans stored before this was recorded).
    pub reason: Option<String>,
    /// Why EXPLAIN ANALYZE was not used, when it was not.
    pub fallback_reason: Option<String>,
    /// The shape's 5-minute p50 (ms) when the plan was captured, when known.
    pub p50_ms: Option<f64>,
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub id: i64,
    #[serde(serialize_with = "time")]
    pub captured_at: SystemTime,
    pub sidecar: String,
    #[serde(flatten)]
    pub plan: NewPlan,
}

/// A query whose plan hash changed between two captures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanChange {
    pub id: i64,
    #[serde(serialize_with = "time")]
    pub at: SystemTime,
    pub database: String,
    pub fingerprint: String,
    pub old_hash: String,
    pub new_hash: String,
    /// Why the new plan was captured (see [`NewPlan::reason`]).
    pub reason: Option<String>,
    /// The 5-minute p50 (ms) when the old and the new plan were captured.
    pub old_p50_ms: Option<f64>,
    pub new_p50_ms: Option<f64>,
}

/// One page of a newest-first list. Pass `next_before_id` as `before_id` to get the next
/// page; it is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_before_id: Option<i64>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id-descending order: the
    /// extra row only says that another page exists.
    pub(crate) fn from_rows(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Page<T> {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_before_id = if more { items.last().map(id) } else { None };
        Page {
            items,
            next_before_id,
        }
    }
}

/// The page size for a requested limit: at least 1, at most [`MAX_PAGE`]. Queries fetch
/// one row more, to tell whether another page exists.
pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_PAGE))
}

pub(crate) fn slow_event(row: &Row) -> Result<Stored<SlowEvent>, StoreError> {
    Ok(Stored {
        id: row.get("id"),
        sidecar: row.get("sidecar"),
        row: SlowEvent {
            at: row.get("at"),
            database: row.get("database"),
            username: row.get("username"),
            fingerprint: row.get("fingerprint"),
            query: row.get("query"),
            duration_ms: row.get("duration_ms"),
            level: Level::parse(row.get("level"))?,
            application_name: row.get("application_name"),
        },
    })
}

pub(crate) fn alert(row: &Row) -> Result<Stored<Alert>, StoreError> {
    Ok(Stored {
        id: row.get("id"),
        sidecar: row.get("sidecar"),
        row: Alert {
            at: row.get("at"),
            database: row.get("database"),
            username: row.get("username"),
            fingerprint: row.get("fingerprint"),
            query: row.get("query"),
            level: Level::parse(row.get("level"))?,
            consecutive: row.get("consecutive"),
            duration_ms: row.get("duration_ms"),
        },
    })
}

/// Expects `plan` and `params` selected as text (see [`json`]).
pub(crate) fn plan(row: &Row) -> Result<Plan, StoreError> {
    let params: Option<&str> = row.get("params");
    Ok(Plan {
        id: row.get("id"),
        captured_at: row.get("captured_at"),
        sidecar: row.get("sidecar"),
        plan: NewPlan {
            database: row.get("database"),
            fingerprint: row.get("fingerprint"),
            query: row.get("query"),
            plan: json("plan", row.get("plan"))?,
            plan_hash: row.get("plan_hash"),
            total_cost: row.get("total_cost"),
            actual_ms: row.get("actual_ms"),
            analyzed: row.get("analyzed"),
            params: params.map(|p| json("plan params", p)).transpose()?,
            reason: row.get("reason"),
            fallback_reason: row.get("fallback_reason"),
            p50_ms: row.get("p50_ms"),
        },
    })
}

pub(crate) fn plan_change(row: &Row) -> PlanChange {
    PlanChange {
        id: row.get("id"),
        at: row.get("at"),
        database: row.get("database"),
        fingerprint: row.get("fingerprint"),
        old_hash: row.get("old_hash"),
        new_hash: row.get("new_hash"),
        reason: row.get("reason"),
        old_p50_ms: row.get("old_p50_ms"),
        new_p50_ms: row.get("new_p50_ms"),
    }
}

/// JSON columns travel as text (`::text` in, `$n::text::jsonb` out) because the driver's
/// jsonb support is behind a feature this crate does not enable.
pub(crate) fn json(what: &'static str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

pub(crate) fn unexpected(what: &'static str, value: &str) -> StoreError {
    StoreError::Unexpected {
        what,
        value: value.to_string(),
    }
}

pub use crate::timefmt::rfc3339_ms;

pub(crate) fn time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_ms(*t))
}

pub(crate) fn opt_time<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339_ms(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn formats_times_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123);
        assert_eq!(rfc3339_ms(t), "2000-02-29T00:00:00.123Z");
        let before = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(rfc3339_ms(before), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn pages_say_whether_more_exist() {
        let full = Page::from_rows(vec![5, 4, 3], 2, |&id| id);
        assert_eq!(full.items, vec![5, 4]);
        assert_eq!(full.next_before_id, Some(4));
        let last = Page::from_rows(vec![2, 1], 2, |&id| id);
        assert_eq!(last.next_before_id, None);
        assert_eq!(page_limit(0), 1);
        assert_eq!(page_limit(5000), i64::from(MAX_PAGE));
    }

    #[test]
    fn stored_rows_serialize_flat() {
        let row = Stored {
            id: 7,
            sidecar: "a".into(),
            row: SlowEvent {
                at: UNIX_EPOCH,
                database: "db".into(),
                username: "u".into(),
                fingerprint: "f".into(),
                query: "select 1".into(),
                duration_ms: 1.5,
                level: Level::Critical,
                application_name: None,
            },
        };
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["level"], "critical");
    }
}
