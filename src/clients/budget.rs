//! The process-wide budget for client bytes buffered but not yet forwarded (a Query must
//! arrive whole before it goes on). Each client's first [`FREE_BYTES`] of buffer are not
//! counted, so ordinary traffic never touches the shared counter; only a client whose
//! buffer grows past that (a message of megabytes) charges the difference, and one that
//! would take the total past `client_buffer_budget` is refused.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Buffer capacity per client that is never charged: twice the relay's high-water mark.
pub const FREE_BYTES: usize = 512 * 1024;

/// Bytes charged now, and how many clients were refused.
#[derive(Default)]
pub struct BufferBudget {
    used: AtomicUsize,
    pub refused: AtomicU64,
}

impl BufferBudget {
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn grow(&self, by: usize, limit: usize) -> bool {
        let before = self.used.fetch_add(by, Ordering::AcqRel);
        if before + by > limit {
            self.used.fetch_sub(by, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn shrink(&self, by: usize) {
        self.used.fetch_sub(by, Ordering::AcqRel);
    }
}

/// One client's share of the budget; given back on drop.
pub struct Charge {
    budget: Arc<BufferBudget>,
    limit: usize,
    held: usize,
}

impl Charge {
    pub fn new(budget: Arc<BufferBudget>, limit: usize) -> Charge {
        Charge {
            budget,
            limit,
            held: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Accounts for a buffer of `capacity` bytes: false (nothing changed) when the
    /// growth does not fit in the budget. One comparison unless the buffer is big.
    pub fn fit(&mut self, capacity: usize) -> bool {
        let wanted = capacity.saturating_sub(FREE_BYTES);
        if wanted == self.held {
            return true;
        }
        if wanted < self.held {
            self.budget.shrink(self.held - wanted);
        } else if !self.budget.grow(wanted - self.held, self.limit) {
            return false;
        }
        self.held = wanted;
        true
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.shrink(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_free_and_big_ones_share_the_limit() {
        let budget = Arc::new(BufferBudget::default());
        let limit = 4 * FREE_BYTES;
        let mut a = Charge::new(budget.clone(), limit);
        let mut b = Charge::new(budget.clone(), limit);
        assert!(a.fit(FREE_BYTES));
        assert_eq!(budget.used(), 0);
        assert!(a.fit(4 * FREE_BYTES));
        assert_eq!(budget.used(), 3 * FREE_BYTES);
        assert!(!b.fit(3 * FREE_BYTES), "over the limit");
        assert_eq!(budget.refused.load(Ordering::Relaxed), 1);
        assert!(b.fit(2 * FREE_BYTES));
        assert_eq!(budget.used(), 4 * FREE_BYTES);
        drop(a);
        assert_eq!(budget.used(), FREE_BYTES);
        assert!(b.fit(0));
        assert_eq!(budget.used(), 0);
    }
}
