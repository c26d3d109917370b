//! A fast, non-cryptographic hasher for per-connection maps (statement names, query
//! texts), where std's SipHash costs more than the rest of the lookup.
//!
//! The keys come from one client and live in that client's own maps, so hash flooding
//! can only slow that client down; it cannot reach other sessions. The mixing is
//! FxHash's (rotate, xor, multiply by an odd constant), eight bytes at a time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash-style hasher: one multiply per eight bytes.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_tails_count() {
        let b = BuildHasherDefault::<FastHasher>::default();
        assert_eq!(b.hash_one("SELECT 1"), b.hash_one("SELECT 1"));
        assert_ne!(b.hash_one("SELECT 1"), b.hash_one("SELECT 2"));
        assert_ne!(b.hash_one("abcdefgh1"), b.hash_one("abcdefgh2"));
        let mut m: FastMap<Box<str>, u32> = FastMap::default();
        m.insert("q1".into(), 1);
        assert_eq!(m.get("q1"), Some(&1));
    }
}
