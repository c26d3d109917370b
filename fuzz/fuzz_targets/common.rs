//! Input helpers shared by the fuzz targets: a byte reader, a run-length expander (so a
//! 4 KiB input can describe a 40 KiB frame, which the streaming paths need), and
//! deterministic read boundaries.

#![allow(dead_code)]

/// Longest byte stream an input may expand to.
pub const MAX_EXPANDED: usize = 256 * 1024;

/// Marks a run in [`expand`]: `0xFE hi lo fill` is `fill` repeated `hi << 8 | lo` times.
pub const RUN: u8 = 0xFE;

/// Expands `0xFE hi lo fill` runs; every other byte stands for itself. Stops at
/// [`MAX_EXPANDED`] bytes.
pub fn expand(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() && out.len() < MAX_EXPANDED {
        if raw[i] == RUN && i + 3 < raw.len() {
            let n = usize::from(raw[i + 1]) << 8 | usize::from(raw[i + 2]);
            let n = n.min(MAX_EXPANDED - out.len());
            out.resize(out.len() + n, raw[i + 3]);
            i += 4;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
}

/// Reads an input front to back; past the end every read is empty or zero.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.first().copied().unwrap_or(0);
        self.data = self.data.get(1..).unwrap_or_default();
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(usize::MAX)
    }
}

/// Read sizes from a seed (xorshift), so one input replays the same boundaries.
pub struct Chunks {
    state: u64,
    max: usize,
}

impl Chunks {
    /// Boundaries for `seed`: reads of 1 to `max` bytes, small ones often.
    pub fn new(seed: u8, max: usize) -> Self {
        Chunks {
            state: 0x9E37_79B9_7F4A_7C15 ^ u64::from(seed).wrapping_mul(0x2545_F491_4F6C_DD1D),
            max: max.max(1),
        }
    }

    pub fn next_len(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let r = self.state as usize;
        if r & 3 == 0 {
            1 + (r >> 2) % 8
        } else {
            1 + (r >> 2) % self.max
        }
    }
}

/// The body of a frame header's length word.
pub fn declared_len(header: &[u8]) -> usize {
    u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize
}
