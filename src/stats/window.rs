//! Time-sliced statistics of one entry (or one aggregate shard): the current minute in a
//! dense accumulator, completed minutes folded into three tiers of compact slots, and
//! the reads that merge a window's slots.
//!
//! Invariant: a sample is in `current` until its minute completes, then in exactly one
//! slot of each tier and in `all`. A window reads `current` plus one tier (or `all`), so
//! no sample is counted twice.

use std::collections::VecDeque;

use super::counters::{ClassMap, Counters};
use super::histogram::{bucket_of, Histogram, BUCKETS};
use super::slot::Slot;
use super::Window;

/// `(slot span in minutes, complete slots kept before the current one)` per tier:
/// minutes for 1m/5m, 5-minute blocks for 1h, hours for 24h.
const TIERS: [(u64, u64); 3] = [(1, 5), (5, 12), (60, 24)];

impl Window {
    /// `(tier, complete slots before the current one)`; `None` for `All`.
    fn tier(self) -> Option<(usize, u64)> {
        match self {
            Window::Min1 => Some((0, 1)),
            Window::Min5 => Some((0, 5)),
            Window::Hour1 => Some((1, 12)),
            Window::Hour24 => Some((2, 24)),
            Window::All => None,
        }
    }
}

/// The minute being recorded, dense so a record is an index increment: no allocation,
/// no search. `lo..=hi` bounds the touched buckets so draining skips the rest.
struct Current {
    minute: u64,
    counts: Box<[u32]>,
    lo: usize,
    hi: usize,
    classes: ClassMap,
    c: Counters,
}

impl Current {
    fn new(minute: u64) -> Self {
        Current {
            minute,
            counts: vec![0u32; BUCKETS].into_boxed_slice(),
            lo: BUCKETS,
            hi: 0,
            classes: ClassMap::default(),
            c: Counters::default(),
        }
    }

    #[inline]
    fn record(&mut self, duration_us: u64, rows: u64, class: Option<u16>) {
        let i = bucket_of(duration_us);
        // u32 per minute: 4 billion samples in one bucket in one minute cannot happen.
        self.counts[i] = self.counts[i].saturating_add(1);
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
        self.c.record(duration_us, rows, class.is_some());
        if let Some(k) = class {
            self.classes.add(k, 1);
        }
    }

    fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let range = self.lo..(self.hi + 1).max(self.lo);
        range
            .filter(|&i| self.counts[i] != 0)
            .map(|i| (i, self.counts[i] as u64))
    }

    /// Moves the minute into `slot` (replacing its contents) and starts an empty one.
    fn drain_into(&mut self, slot: &mut Slot) {
        slot.write(&self.c, &self.classes, self.buckets());
        if self.lo <= self.hi {
            self.counts[self.lo..=self.hi].fill(0);
        }
        (self.lo, self.hi) = (BUCKETS, 0);
        self.classes.clear();
        self.c = Counters::default();
    }
}

struct Tier {
    span: u64,
    keep: u64,
    /// `(block = minute / span, slot)`, ascending by block, no duplicate blocks.
    slots: VecDeque<(u64, Slot)>,
    /// An empty slot kept from pruning for the next block: each tier recycles its own,
    /// so a buffer's capacity stays sized for that tier's slots.
    spare: Option<Slot>,
}

impl Tier {
    fn push(&mut self, block: u64, slot: Slot) {
        // The back slot's block is complete: it will not grow again, so drop the slack
        // merging left (at most once per block, and only when it is worth a realloc).
        if let Some((_, done)) = self.slots.back_mut() {
            done.trim();
        }
        if self.slots.len() == self.slots.capacity() {
            // Doubling, but never past what the tier can hold: pruning runs after the
            // push, so a tier briefly holds keep + 2 slots.
            let want = (self.slots.capacity() * 2).clamp(4, self.keep as usize + 2);
            self.slots
                .reserve_exact(want.max(self.slots.len() + 1) - self.slots.len());
        }
        self.slots.push_back((block, slot));
    }

    /// Adds completed minute `minute` to its block.
    fn add(&mut self, minute: u64, done: &Slot) {
        let block = minute / self.span;
        match self.slots.back_mut() {
            Some((b, slot)) if *b == block => slot.merge(done),
            _ => {
                let mut slot = self.spare.take().unwrap_or_default();
                slot.merge(done);
                self.push(block, slot);
            }
        }
    }

    /// Drops the slots no window reads any more at `minute`.
    fn prune(&mut self, minute: u64) {
        let cutoff = (minute / self.span).saturating_sub(self.keep);
        while self.slots.front().is_some_and(|(b, _)| *b < cutoff) {
            let (_, mut old) = self.slots.pop_front().expect("front exists");
            if self.spare.is_none() {
                old.clear();
                self.spare = Some(old);
            }
        }
    }
}

/// All windows of one entry. Callers serialize access (it lives behind a mutex).
pub(crate) struct Windowed {
    current: Current,
    /// Minutes, 5-minute blocks, hours. The first spans one minute, which `advance`
    /// relies on: each drained minute is a new block there.
    tiers: [Tier; 3],
    all: Slot,
    pub last_seen: u64,
}

impl Windowed {
    pub fn new(now: u64) -> Self {
        Windowed {
            current: Current::new(now / 60),
            tiers: TIERS.map(|(span, keep)| Tier {
                span,
                keep,
                slots: VecDeque::new(),
                spare: None,
            }),
            all: Slot::default(),
            last_seen: now,
        }
    }

    /// The hot path. Allocates nothing unless a minute rolls over, and then only if a
    /// slot outgrows the buffer it recycles.
    #[inline]
    pub fn record(&mut self, now: u64, duration_us: u64, rows: u64, class: Option<u16>) {
        self.advance(now / 60);
        self.current.record(duration_us, rows, class);
        self.last_seen = self.last_seen.max(now);
    }

    /// Adds pool wait to the statement just recorded (same lock, so the same minute).
    #[inline]
    pub fn record_wait(&mut self, wait_us: u64) {
        self.current.c.wait_us = self.current.c.wait_us.saturating_add(wait_us);
    }

    /// Rolls the current minute into the tiers once time has moved past it. A `minute`
    /// behind the current one (callers' clocks differ slightly) records into current.
    fn advance(&mut self, minute: u64) {
        if minute <= self.current.minute {
            return;
        }
        if self.current.c.calls > 0 {
            let done = self.current.minute;
            let [minutes, longer @ ..] = &mut self.tiers;
            debug_assert!(minutes.slots.back().is_none_or(|(b, _)| *b < done));
            let mut slot = minutes.spare.take().unwrap_or_default();
            self.current.drain_into(&mut slot);
            self.all.merge(&slot);
            longer.iter_mut().for_each(|t| t.add(done, &slot));
            minutes.push(done, slot);
        }
        self.current.minute = minute;
        self.tiers.iter_mut().for_each(|t| t.prune(minute));
    }

    /// The completed slots in window `w` at `minute`, and whether the current minute is
    /// in it. A window of W with slots of S covers the current slot plus the W/S before
    /// it: between W and W + S of history.
    fn parts(&self, w: Window, minute: u64) -> (bool, impl Iterator<Item = &Slot>) {
        let (tier, cutoff, all) = match w.tier() {
            Some((t, keep)) => (t, (minute / self.tiers[t].span).saturating_sub(keep), None),
            // No tier slot passes a cutoff of u64::MAX: All is `all` plus current.
            None => (0, u64::MAX, Some(&self.all)),
        };
        let span = self.tiers[tier].span;
        let current_in = all.is_some() || self.current.minute / span >= cutoff;
        let slots = self.tiers[tier].slots.iter();
        let slots = slots.filter(move |(b, _)| *b >= cutoff).map(|(_, s)| s);
        (current_in, slots.chain(all))
    }

    /// Adds window `w` as of `now` into `acc`.
    pub fn read(&mut self, w: Window, now: u64, acc: &mut Acc) {
        self.advance(now / 60);
        let (current_in, slots) = self.parts(w, now / 60);
        for slot in slots {
            let view = slot.view();
            acc.add(&view.c, &view.classes, view.buckets);
        }
        let cur = &self.current;
        if current_in && cur.c.calls > 0 {
            acc.add(&cur.c, &cur.classes, cur.buckets());
        }
    }

    /// Adds the completed minute `minute` into `acc`, if it is still kept.
    pub fn read_minute(&mut self, minute: u64, now: u64, acc: &mut Acc) {
        self.advance(now / 60);
        // The first tier spans one minute: its blocks are minutes.
        if let Some((_, slot)) = self.tiers[0].slots.iter().find(|(b, _)| *b == minute) {
            let view = slot.view();
            acc.add(&view.c, &view.classes, view.buckets);
        }
    }

    /// Total time in window `w`: the cheap number eviction ranks entries by.
    pub fn total_us(&mut self, w: Window, now: u64) -> u64 {
        self.advance(now / 60);
        let (current_in, slots) = self.parts(w, now / 60);
        let current = if current_in {
            self.current.c.total_us
        } else {
            0
        };
        slots.fold(current, |sum, s| sum.saturating_add(s.view().c.total_us))
    }

    /// Approximate bytes owned, itself included (buffers by capacity).
    pub fn heap_bytes(&self) -> usize {
        let tiers = self.tiers.iter().map(|t| {
            let slots = t.slots.iter().map(|(_, s)| s).chain(&t.spare);
            let headers = t.slots.capacity() * std::mem::size_of::<(u64, Slot)>();
            headers + slots.map(Slot::heap_bytes).sum::<usize>()
        });
        std::mem::size_of::<Self>() + BUCKETS * 4 + self.all.heap_bytes() + tiers.sum::<usize>()
    }
}

/// A window being read: slots (and entries, and aggregate shards) merge into it.
pub(crate) struct Acc {
    pub hist: Histogram,
    pub c: Counters,
    pub classes: ClassMap,
}

impl Acc {
    pub fn new() -> Self {
        Acc {
            hist: Histogram::new(),
            c: Counters::default(),
            classes: ClassMap::default(),
        }
    }

    pub fn clear(&mut self) {
        self.hist.clear();
        self.c = Counters::default();
        self.classes.clear();
    }

    fn add(
        &mut self,
        c: &Counters,
        classes: &ClassMap,
        buckets: impl Iterator<Item = (usize, u64)>,
    ) {
        if c.calls > 0 {
            self.hist.widen(c.min_us, c.max_us);
        }
        buckets.for_each(|(i, n)| self.hist.add_bucket(i, n));
        self.c.merge(c);
        self.classes.merge(classes);
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
