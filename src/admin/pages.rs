//! Frozen query listings, so paging is stable: the first page of a listing that has
//! more pages keeps its sorted, filtered rows here, and later pages read the same rows
//! whatever statements run meanwhile (no row twice, none skipped, values as of the
//! first page). At most [`KEEP`] listings live for [`TTL`]; a cursor whose listing is
//! gone resumes after its position in a fresh listing instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::stats::QuerySnapshot;

pub const KEEP: usize = 8;
pub const TTL: Duration = Duration::from_secs(600);

pub type Rows = Arc<[QuerySnapshot]>;

struct Kept {
    id: u64,
    created: Instant,
    rows: Rows,
}

#[derive(Default)]
pub struct PageStore {
    kept: Mutex<(u64, VecDeque<Kept>)>,
}

impl PageStore {
    /// Keeps `rows`; returns the id a cursor names them by.
    pub fn put(&self, rows: Rows) -> u64 {
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, kept) = &mut *guard;
        *next += 1;
        let id = *next;
        if kept.len() >= KEEP {
            kept.pop_front();
        }
        kept.push_back(Kept {
            id,
            created: Instant::now(),
            rows,
        });
        id
    }

    /// The rows kept under `id`, unless they expired or were pushed out.
    pub fn get(&self, id: u64) -> Option<Rows> {
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = &mut guard.1;
        kept.retain(|k| k.created.elapsed() < TTL);
        kept.iter().find(|k| k.id == id).map(|k| k.rows.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest() {
        let store = PageStore::default();
        let ids: Vec<u64> = (0..KEEP + 2)
            .map(|_| store.put(Arc::from(vec![])))
            .collect();
        assert!(store.get(ids[0]).is_none() && store.get(ids[1]).is_none());
        assert!(ids[2..].iter().all(|&id| store.get(id).is_some()));
        assert!(store.get(999).is_none());
    }
}
