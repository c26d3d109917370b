//! Exact per-slot totals ([`Counters`]) and the bounded, allocation-free map of error
//! counts by SQLSTATE class ([`ClassMap`]).

/// At most this many classes per map; the last place is reserved for
/// [`OVERFLOW_CLASS`], which counts everything past the first 15 distinct classes.
pub(crate) const MAX_CLASSES: usize = 16;
pub(crate) const OVERFLOW_CLASS: u16 = u16::from_be_bytes(*b"??");

/// The class of a SQLSTATE (its first two characters). Anything that is not an ASCII
/// letter or digit becomes `?`, so a class always prints as two ASCII characters.
pub(crate) fn class_key(sqlstate: [u8; 5]) -> u16 {
    let clean = |b: u8| match b.is_ascii_alphanumeric() {
        true => b.to_ascii_uppercase(),
        false => b'?',
    };
    u16::from_be_bytes([clean(sqlstate[0]), clean(sqlstate[1])])
}

pub(crate) fn class_name(key: u16) -> String {
    String::from_utf8_lossy(&key.to_be_bytes()).into_owned()
}

/// Error counts by class, inline (no heap), sorted by class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassMap {
    /// `(class, count)` for `..len`, ascending by class, classes distinct.
    entries: [(u16, u64); MAX_CLASSES],
    len: usize,
}

impl Default for ClassMap {
    fn default() -> Self {
        ClassMap {
            entries: [(0, 0); MAX_CLASSES],
            len: 0,
        }
    }
}

impl ClassMap {
    pub fn add(&mut self, class: u16, n: u64) {
        let used = &mut self.entries[..self.len];
        match used.binary_search_by_key(&class, |e| e.0) {
            Ok(i) => used[i].1 += n,
            // An ordinary class may take one of the first MAX_CLASSES - 1 places; the
            // overflow class always fits because ordinary ones stop one short of the cap.
            Err(i) if class == OVERFLOW_CLASS || self.len < MAX_CLASSES - 1 => {
                self.entries.copy_within(i..self.len, i + 1);
                self.entries[i] = (class, n);
                self.len += 1;
            }
            Err(_) => self.add(OVERFLOW_CLASS, n),
        }
    }

    pub fn merge(&mut self, other: &ClassMap) {
        other.iter().for_each(|(class, n)| self.add(class, n));
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.entries[..self.len].iter().copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Exact totals of a slot or window. `min_us` is `u64::MAX` while `calls == 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    pub calls: u64,
    pub errors: u64,
    pub rows: u64,
    pub total_us: u64,
    pub min_us: u64,
    pub max_us: u64,
    /// Of `total_us`, the time spent waiting for a pool's server (checkout).
    pub wait_us: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            calls: 0,
            errors: 0,
            rows: 0,
            total_us: 0,
            min_us: u64::MAX,
            max_us: 0,
            wait_us: 0,
        }
    }
}

impl Counters {
    #[inline]
    pub fn record(&mut self, duration_us: u64, rows: u64, error: bool) {
        self.calls += 1;
        self.errors += error as u64;
        self.rows = self.rows.saturating_add(rows);
        self.total_us = self.total_us.saturating_add(duration_us);
        self.min_us = self.min_us.min(duration_us);
        self.max_us = self.max_us.max(duration_us);
    }

    pub fn merge(&mut self, o: &Counters) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.rows = self.rows.saturating_add(o.rows);
        self.total_us = self.total_us.saturating_add(o.total_us);
        self.min_us = self.min_us.min(o.min_us);
        self.max_us = self.max_us.max(o.max_us);
        self.wait_us = self.wait_us.saturating_add(o.wait_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_bounded_and_sorted() {
        let mut map = ClassMap::default();
        for i in 0..40u8 {
            map.add(class_key([b'Z' - i % 26, b'0' + i / 26, 0, 0, 0]), 1);
        }
        map.add(class_key(*b"Z0000"), 2);
        assert_eq!(map.len(), MAX_CLASSES);
        let all: Vec<(u16, u64)> = map.iter().collect();
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "sorted, distinct");
        assert_eq!(all.iter().map(|e| e.1).sum::<u64>(), 42);
        let overflow = all.iter().find(|e| e.0 == OVERFLOW_CLASS).unwrap();
        assert_eq!(overflow.1, 40 - (MAX_CLASSES as u64 - 1));
        assert_eq!(class_name(class_key(*b"23505")), "23");
        assert_eq!(class_name(class_key([0xff, b'a', 0, 0, 0])), "?A");
    }

    #[test]
    fn counters_merge_like_records() {
        let mut a = Counters::default();
        let (mut b, mut both) = (a, a);
        for (i, d) in [5u64, 1, 9, 3].into_iter().enumerate() {
            let (rows, err) = (i as u64, i % 2 == 0);
            both.record(d, rows, err);
            if i < 2 { &mut a } else { &mut b }.record(d, rows, err);
        }
        a.merge(&b);
        assert_eq!(a, both);
        assert_eq!(
            (a.calls, a.errors, a.rows, a.total_us, a.min_us, a.max_us),
            (4, 2, 6, 18, 1, 9)
        );
    }
}
