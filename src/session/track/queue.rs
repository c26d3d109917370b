//! The statements a tracker is waiting on, in order, with what EXPLAIN would need of
//! each. The first entry lives inline: most requests carry one statement, and the
//! queue's heap buffer is one more cold cache line per query when 64 sessions take turns.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use tokio::time::Instant;

use crate::session::statements::Prepared;
use crate::stats::QueryStats;

/// Bytes of statement text and values kept for the queued statements at most.
pub const ARENA_MAX: usize = 1 << 20;

/// Where the statement's text (and values) can be found again if it turns out slow.
pub enum Source {
    /// Not available (a streamed Bind, or a FunctionCall).
    None,
    /// Simple protocol: the statement's text, in the arena.
    Text(Range<u32>),
    /// Extended protocol: the statement and its Bind values (after the names), in the arena.
    Bound {
        stmt: Arc<Prepared>,
        bind: Range<u32>,
    },
}

pub struct InFlight {
    /// `None` for an Execute of a portal the tracker does not know (a statement
    /// prepared with SQL PREPARE, or a streamed Parse): it still takes its place in the
    /// order of responses, so the statements after it are matched correctly.
    pub entry: Option<Arc<QueryStats>>,
    pub started: Instant,
    pub request: u64,
    pub source: Source,
    /// Of its time so far, how long it waited for the pool to hand out a server.
    pub wait_us: u64,
}

#[derive(Default)]
pub struct Queue {
    head: Option<InFlight>,
    rest: VecDeque<InFlight>,
    /// Bytes the sources point into; emptied whenever the queue is.
    arena: Vec<u8>,
}

impl Queue {
    pub fn front(&self) -> Option<&InFlight> {
        self.head.as_ref()
    }

    pub fn push(&mut self, item: InFlight) {
        if self.head.is_none() {
            self.head = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    /// Every statement in flight waited `us` more for a server (they all wait for the
    /// same checkout).
    pub fn add_wait(&mut self, us: u64) {
        for item in self.head.iter_mut().chain(self.rest.iter_mut()) {
            item.wait_us = item.wait_us.saturating_add(us);
        }
    }

    /// Removes the first entry; the caller reads its source before the next push.
    pub fn pop(&mut self) -> Option<InFlight> {
        let item = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(item)
    }

    /// Empties the arena once nothing points into it.
    pub fn settle(&mut self) {
        if self.head.is_none() {
            self.arena.clear();
        }
    }

    pub fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.arena.clear();
        self.head.take().into_iter().chain(self.rest.drain(..))
    }

    /// Copies `bytes` into the arena, unless a long pipeline already filled it (then
    /// the statement simply cannot be explained).
    pub fn keep(&mut self, bytes: &[u8]) -> Option<Range<u32>> {
        if self.arena.len() + bytes.len() > ARENA_MAX {
            return None;
        }
        let start = u32::try_from(self.arena.len()).ok()?;
        let end = u32::try_from(self.arena.len() + bytes.len()).ok()?;
        self.arena.extend_from_slice(bytes);
        Some(start..end)
    }

    pub fn bytes(&self, range: &Range<u32>) -> &[u8] {
        self.arena
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default()
    }
}
