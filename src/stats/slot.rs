//! A completed time slot, stored compactly: its counters, error classes and the
//! histogram buckets it touched, as one varint-encoded byte string.
//!
//! Why encoded: a fingerprint keeps up to ~45 slots, and slots dominate memory. A
//! touched bucket costs ~2–3 bytes here (key gap + count, LEB128) against 8 for a packed
//! `u64`, and a slot's fixed cost is one `Vec` header. Slots are only written at a minute
//! rollover and read by window reads, never per record, so decoding is off the hot path.
//!
//! Layout: `calls errors rows total_us min_us max_us`, `n_classes (class count)*`, then
//! `(gap count)*` where a bucket's index is the previous index + 1 + gap (the first is
//! just `gap`). An empty byte string is an empty slot.

use std::cell::RefCell;

use super::counters::{ClassMap, Counters};

fn put(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads varints from a slot's bytes. The bytes are only ever written by [`put`], so a
/// truncated varint cannot occur; it would read as the bits seen so far.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn get(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        while let Some((&b, rest)) = self.buf.split_first() {
            self.buf = rest;
            v |= ((b & 0x7f) as u64) << shift.min(63);
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        v
    }
}

/// A decoded slot header plus an iterator over its `(bucket, count)` pairs, ascending.
pub(crate) struct View<'a> {
    pub c: Counters,
    pub classes: ClassMap,
    pub buckets: Buckets<'a>,
}

pub(crate) struct Buckets<'a> {
    r: Reader<'a>,
    /// The smallest index the next bucket may have.
    next: u64,
}

impl Iterator for Buckets<'_> {
    type Item = (usize, u64);

    fn next(&mut self) -> Option<(usize, u64)> {
        if self.r.buf.is_empty() {
            return None;
        }
        let i = self.next + self.r.get();
        self.next = i + 1;
        Some((i as usize, self.r.get()))
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Slot {
    data: Vec<u8>,
}

thread_local! {
    /// Merge output buffer, one per thread so slots do not each carry one.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Slot {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Empties the slot, keeping its buffer for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// Replaces the contents. `buckets` must ascend by index.
    pub fn write(
        &mut self,
        c: &Counters,
        classes: &ClassMap,
        buckets: impl Iterator<Item = (usize, u64)>,
    ) {
        self.data.clear();
        encode(&mut self.data, c, classes, buckets);
    }

    pub fn view(&self) -> View<'_> {
        let mut r = Reader { buf: &self.data };
        let mut c = Counters::default();
        let mut classes = ClassMap::default();
        if !self.data.is_empty() {
            let mut f = [0u64; 7];
            f.iter_mut().for_each(|v| *v = r.get());
            let [calls, errors, rows, total_us, min_us, max_us, wait_us] = f;
            c = Counters {
                calls,
                errors,
                rows,
                total_us,
                min_us,
                max_us,
                wait_us,
            };
            for _ in 0..r.get() {
                let class = r.get() as u16;
                classes.add(class, r.get());
            }
        }
        let buckets = Buckets { r, next: 0 };
        View {
            c,
            classes,
            buckets,
        }
    }

    /// Adds `other` into this slot. Allocates only if the merged bytes outgrow this
    /// slot's buffer (or the thread's scratch buffer the first time).
    pub fn merge(&mut self, other: &Slot) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            self.data.extend_from_slice(&other.data);
            return;
        }
        SCRATCH.with(|scratch| {
            let mut out = scratch.borrow_mut();
            out.clear();
            let (a, b) = (self.view(), other.view());
            let mut c = a.c;
            c.merge(&b.c);
            let mut classes = a.classes;
            classes.merge(&b.classes);
            encode(&mut out, &c, &classes, merge_sorted(a.buckets, b.buckets));
            self.data.clear();
            self.data.extend_from_slice(&out);
        });
    }

    /// Releases spare capacity above 25% of the length.
    pub fn trim(&mut self) {
        if self.data.capacity() > self.data.len() * 5 / 4 {
            self.data.shrink_to_fit();
        }
    }

    /// Heap bytes held (capacity: what the allocator gave us).
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity()
    }
}

fn encode(
    buf: &mut Vec<u8>,
    c: &Counters,
    classes: &ClassMap,
    buckets: impl Iterator<Item = (usize, u64)>,
) {
    if c.calls == 0 {
        return; // an empty slot is the empty string
    }
    for v in [
        c.calls, c.errors, c.rows, c.total_us, c.min_us, c.max_us, c.wait_us,
    ] {
        put(buf, v);
    }
    put(buf, classes.len() as u64);
    for (class, n) in classes.iter() {
        put(buf, class as u64);
        put(buf, n);
    }
    let mut next = 0;
    for (i, n) in buckets {
        put(buf, i as u64 - next);
        put(buf, n);
        next = i as u64 + 1;
    }
}

/// Two ascending `(bucket, count)` streams as one, adding counts of equal buckets.
fn merge_sorted<'a>(
    mut a: Buckets<'a>,
    mut b: Buckets<'a>,
) -> impl Iterator<Item = (usize, u64)> + 'a {
    let (mut x, mut y) = (a.next(), b.next());
    std::iter::from_fn(move || match (x, y) {
        (Some((i, n)), Some((j, m))) if i == j => {
            (x, y) = (a.next(), b.next());
            Some((i, n + m))
        }
        (Some((i, n)), Some((j, _))) if i < j => {
            x = a.next();
            Some((i, n))
        }
        (_, Some(p)) => {
            y = b.next();
            Some(p)
        }
        (Some(p), None) => {
            x = a.next();
            Some(p)
        }
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn slot_of(map: &BTreeMap<usize, u64>, c: &Counters, classes: &ClassMap) -> Slot {
        let mut s = Slot::default();
        s.write(c, classes, map.iter().map(|(&i, &n)| (i, n)));
        s
    }

    #[test]
    fn round_trip_and_merge_match_a_map() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut acc = Slot::default();
        let (mut want, mut want_c, mut want_classes) =
            (BTreeMap::new(), Counters::default(), ClassMap::default());
        for round in 0..300 {
            let mut part = BTreeMap::new();
            let mut c = Counters::default();
            let mut classes = ClassMap::default();
            for _ in 0..rng.gen_range(1..30) {
                let v = rng.gen_range(0..super::super::histogram::BUCKETS);
                let bits = rng.gen_range(1..40);
                let n = rng.gen_range(1..1u64 << bits);
                *part.entry(v).or_insert(0) += n;
                c.record(rng.gen_range(0..1 << 40), n, round % 3 == 0);
            }
            classes.add(u16::from_be_bytes(*b"23"), round);
            let s = slot_of(&part, &c, &classes);
            let v = s.view();
            assert_eq!((v.c, v.classes), (c, classes));
            assert_eq!(v.buckets.collect::<BTreeMap<_, _>>(), part);
            part.iter()
                .for_each(|(&i, &n)| *want.entry(i).or_insert(0) += n);
            want_c.merge(&c);
            want_classes.merge(&classes);
            acc.merge(&s);
            let v = acc.view();
            assert_eq!((v.c, v.classes), (want_c, want_classes));
            assert_eq!(v.buckets.collect::<BTreeMap<_, _>>(), want);
        }
    }

    #[test]
    fn empty_slots() {
        let mut s = Slot::default();
        assert!(s.view().buckets.next().is_none());
        assert_eq!(s.view().c, Counters::default());
        s.merge(&Slot::default());
        assert!(s.is_empty());
        s.write(
            &Counters::default(),
            &ClassMap::default(),
            [(3, 1)].into_iter(),
        );
        assert!(s.is_empty(), "no calls: nothing stored");
    }
}
