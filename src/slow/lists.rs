//! Newest-first lists of slow events, alerts, plans and jobs, from the store when there
//! is one and from memory otherwise, for the admin API and the console alike.

use serde::Serialize;
use serde_json::Value;

use super::Ctx;
use crate::store::{JobStatus, Page};

/// What to list.
#[derive(Debug, Clone)]
pub enum List {
    Slow,
    Alerts,
    Plans {
        fingerprint: Option<String>,
        database: Option<String>,
    },
    Jobs {
        status: Option<JobStatus>,
    },
    PlanChanges {
        fingerprint: Option<String>,
        database: Option<String>,
    },
    /// Per-minute statistics of the last `window` (store only).
    History {
        window: std::time::Duration,
        fingerprint: Option<String>,
        database: Option<String>,
    },
}

/// One page: JSON rows (each with an `id`) and where the next page starts.
pub struct Listing {
    pub rows: Vec<Value>,
    pub next_before_id: Option<i64>,
}

fn from_page<T: Serialize>(page: Page<T>) -> Listing {
    Listing {
        rows: page.items.iter().map(to_json).collect(),
        next_before_id: page.next_before_id,
    }
}

fn to_json<T: Serialize>(row: &T) -> Value {
    serde_json::to_value(row).unwrap_or(Value::Null)
}

/// From memory: fetch one more than `limit` to know whether another page exists.
fn from_memory<T: Serialize>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Listing {
    let more = rows.len() > limit;
    rows.truncate(limit);
    Listing {
        next_before_id: rows.last().filter(|_| more).map(id),
        rows: rows.iter().map(to_json).collect(),
    }
}

/// A page of `list`. Job payloads are never shown (an EXPLAIN job's carries the
/// client's parameter values until it is done).
pub async fn list(
    ctx: &Ctx,
    list: &List,
    before_id: Option<i64>,
    limit: usize,
) -> Result<Listing, String> {
    let from_store = match ctx.store.usable() {
        Some(store) => from_store(store, list, before_id, limit).await,
        None => None,
    };
    Ok(from_store.unwrap_or_else(|| from_recent(ctx, list, before_id, limit)))
}

/// A page from memory: without a store, or while it is down (the in-memory lists hold
/// every recent event and alert, including those still waiting for the store).
fn from_recent(ctx: &Ctx, list: &List, before_id: Option<i64>, limit: usize) -> Listing {
    let recent = &ctx.slow.recent;
    match list {
        List::Slow => from_memory(recent.events(before_id, limit + 1), limit, |e| e.id),
        List::Alerts => from_memory(recent.alerts(before_id, limit + 1), limit, |a| a.id),
        List::Plans {
            fingerprint,
            database,
        } => {
            let (f, d) = (fingerprint.as_deref(), database.as_deref());
            let plans = recent.plans(f, d, before_id, limit + 1);
            from_memory(plans, limit, |p| p.id)
        }
        List::PlanChanges {
            fingerprint,
            database,
        } => {
            let (f, d) = (fingerprint.as_deref(), database.as_deref());
            let changes = recent.changes(f, d, before_id, limit + 1);
            from_memory(changes, limit, |c| c.id)
        }
        List::Jobs { .. } | List::History { .. } => Listing {
            rows: Vec::new(),
            next_before_id: None,
        },
    }
}

/// A page from the store; `None` (after marking the store down) when it fails.
async fn from_store(
    store: &crate::store::Store,
    list: &List,
    before_id: Option<i64>,
    limit: usize,
) -> Option<Listing> {
    let limit = limit as u32;
    let listing = match list {
        List::Slow => store.list_slow(before_id, limit).await.map(from_page),
        List::Alerts => store.list_alerts(before_id, limit).await.map(from_page),
        List::Plans {
            fingerprint,
            database,
        } => {
            let (f, d) = (fingerprint.as_deref(), database.as_deref());
            store
                .list_plans(f, d, before_id, limit)
                .await
                .map(from_page)
        }
        List::PlanChanges {
            fingerprint,
            database,
        } => {
            let (f, d) = (fingerprint.as_deref(), database.as_deref());
            (store.list_plan_changes(f, d, before_id, limit).await).map(from_page)
        }
        List::History {
            window,
            fingerprint,
            database,
        } => {
            let (f, d) = (fingerprint.as_deref(), database.as_deref());
            (store.list_history(*window, f, d, before_id, limit).await).map(from_page)
        }
        List::Jobs { status } => store
            .list_jobs(*status, before_id, limit)
            .await
            .map(|page| {
                let mut listing = from_page(page);
                for row in &mut listing.rows {
                    if let Some(job) = row.as_object_mut() {
                        job.remove("payload");
                    }
                }
                listing
            }),
    };
    match listing {
        Ok(listing) => Some(listing),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list from the store; answering from memory");
            None
        }
    }
}
