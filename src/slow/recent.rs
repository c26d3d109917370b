//! The latest slow events, alerts and plans kept in memory: what the API and console
//! show when there is no store, bounded so a storm of slow queries cannot grow memory.
//! Rows have the store's shapes, with ids of their own.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::store::{Alert, Plan, PlanChange, SlowEvent, Stored};

/// Items kept per list.
pub const KEEP: usize = 1000;

struct Ring<T> {
    next_id: i64,
    items: VecDeque<T>,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring {
            next_id: 1,
            items: VecDeque::new(),
        }
    }
}

impl<T: Clone> Ring<T> {
    fn push(&mut self, make: impl FnOnce(i64) -> T) -> T {
        let item = make(self.next_id);
        self.next_id += 1;
        if self.items.len() == KEEP {
            self.items.pop_front();
        }
        self.items.push_back(item.clone());
        item
    }

    /// Newest first: up to `limit` items with ids below `before_id` that `keep` accepts.
    fn page(
        &self,
        before_id: Option<i64>,
        limit: usize,
        id: impl Fn(&T) -> i64,
        keep: impl Fn(&T) -> bool,
    ) -> Vec<T> {
        (self.items.iter().rev())
            .filter(|t| before_id.is_none_or(|b| id(t) < b))
            .filter(|t| keep(t))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[derive(Default)]
pub struct Recent {
    events: Mutex<Ring<Stored<SlowEvent>>>,
    alerts: Mutex<Ring<Stored<Alert>>>,
    plans: Mutex<Ring<Plan>>,
    changes: Mutex<Ring<PlanChange>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recent {
    pub fn push_event(&self, sidecar: &str, event: SlowEvent) {
        lock(&self.events).push(|id| Stored {
            id,
            sidecar: sidecar.to_string(),
            row: event,
        });
    }

    pub fn push_alert(&self, sidecar: &str, alert: Alert) {
        lock(&self.alerts).push(|id| Stored {
            id,
            sidecar: sidecar.to_string(),
            row: alert,
        });
    }

    /// Keeps a plan and returns it as kept (with its id).
    pub fn push_plan(&self, make: impl FnOnce(i64) -> Plan) -> Plan {
        lock(&self.plans).push(make)
    }

    pub fn push_change(&self, make: impl FnOnce(i64) -> PlanChange) {
        lock(&self.changes).push(make);
    }

    pub fn changes(
        &self,
        fingerprint: Option<&str>,
        database: Option<&str>,
        before_id: Option<i64>,
        limit: usize,
    ) -> Vec<PlanChange> {
        let keep = |c: &PlanChange| {
            fingerprint.is_none_or(|f| c.fingerprint == f)
                && database.is_none_or(|d| c.database == d)
        };
        lock(&self.changes).page(before_id, limit, |c| c.id, keep)
    }

    pub fn events(&self, before_id: Option<i64>, limit: usize) -> Vec<Stored<SlowEvent>> {
        lock(&self.events).page(before_id, limit, |e| e.id, |_| true)
    }

    pub fn alerts(&self, before_id: Option<i64>, limit: usize) -> Vec<Stored<Alert>> {
        lock(&self.alerts).page(before_id, limit, |a| a.id, |_| true)
    }

    pub fn plans(
        &self,
        fingerprint: Option<&str>,
        database: Option<&str>,
        before_id: Option<i64>,
        limit: usize,
    ) -> Vec<Plan> {
        let keep = |p: &Plan| {
            fingerprint.is_none_or(|f| p.plan.fingerprint == f)
                && database.is_none_or(|d| p.plan.database == d)
        };
        lock(&self.plans).page(before_id, limit, |p| p.id, keep)
    }

    /// The newest plan of (database, fingerprint): id, capture time and hash.
    pub fn latest_ref(&self, database: &str, fingerprint: &str) -> Option<crate::store::PlanRef> {
        let plans = lock(&self.plans);
        (plans.items.iter().rev())
            .find(|p| p.plan.database == database && p.plan.fingerprint == fingerprint)
            .map(|p| crate::store::PlanRef {
                id: p.id,
                captured_at: p.captured_at,
                plan_hash: p.plan.plan_hash.clone(),
            })
    }

    /// The latest plan captured for (database, fingerprint): its hash and the p50 (ms)
    /// of its window.
    pub fn latest(&self, database: &str, fingerprint: &str) -> Option<(String, Option<f64>)> {
        let plans = lock(&self.plans);
        (plans.items.iter().rev())
            .find(|p| p.plan.database == database && p.plan.fingerprint == fingerprint)
            .map(|p| (p.plan.plan_hash.clone(), p.plan.p50_ms))
    }
}
