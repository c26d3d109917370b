//! Who owns the renamed prepared statements on a pool's servers (transaction mode): every
//! client gets an owner id that is never reused, and names its statements after it
//! (`pgsc_<id>_<n>`). When an owner leaves, its statements are closed on each server
//! the next time that server is checked out, inside the next client's first request
//! (no extra round trip), so one client's statement texts never show to another.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{lock, Pool};

/// The pool's record of statement owners.
#[derive(Default)]
pub struct StatementOwners {
    next: AtomicU64,
    live: Mutex<HashSet<u64>>,
    /// Bumped whenever an owner leaves: a server that has seen the current value has
    /// nothing to close, which keeps a checkout's cost at one atomic load.
    departures: AtomicU64,
}

impl StatementOwners {
    pub fn departures(&self) -> u64 {
        self.departures.load(Ordering::Acquire)
    }

    pub fn is_live(&self, id: u64) -> bool {
        lock(&self.live).contains(&id)
    }

    fn join(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.live).insert(id);
        id
    }

    fn leave(&self, id: u64) {
        lock(&self.live).remove(&id);
        self.departures.fetch_add(1, Ordering::AcqRel);
    }
}

/// A client's membership; leaving (on drop) marks its statements for closing.
pub struct StatementOwner {
    pool: Arc<Pool>,
    pub id: u64,
}

impl StatementOwner {
    pub fn join(pool: &Arc<Pool>) -> StatementOwner {
        StatementOwner {
            id: pool.owners.join(),
            pool: pool.clone(),
        }
    }
}

impl Drop for StatementOwner {
    fn drop(&mut self) {
        self.pool.owners.leave(self.id);
    }
}

/// The owner id in a renamed statement name (`pgsc_<hex id>_<n>`).
pub fn owner_of(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("pgsc_")?;
    let (id, _) = rest.split_once('_')?;
    u64::from_str_radix(id, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_are_read_back_from_names() {
        assert_eq!(owner_of("pgsc_2a_0"), Some(0x2a));
        assert_eq!(owner_of("pgsc_ffffffffff_17"), Some(0xff_ffff_ffff));
        assert_eq!(owner_of("s0"), None);
        assert_eq!(owner_of("pgsc_zz_1"), None);
    }

    #[test]
    fn leaving_bumps_departures() {
        let owners = StatementOwners::default();
        let a = owners.join();
        let b = owners.join();
        assert_ne!(a, b);
        let before = owners.departures();
        owners.leave(a);
        assert!(!owners.is_live(a) && owners.is_live(b));
        assert_eq!(owners.departures(), before + 1);
    }
}
