//! Recycled read buffers: an idle client holds none, and a busy one takes and returns a
//! buffer per transaction from a per-thread free list instead of the allocator.

use std::cell::RefCell;

use bytes::BytesMut;

/// Size of a pooled buffer; a buffer that grew beyond twice this is freed, not pooled.
pub const BUFFER_SIZE: usize = 16 * 1024;
/// Free buffers kept per thread (bounds the pool at 8 MiB per thread).
const MAX_FREE: usize = 512;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with at least `BUFFER_SIZE` bytes of capacity.
pub fn take() -> BytesMut {
    FREE.with(|free| free.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(BUFFER_SIZE))
}

/// Returns a buffer for reuse. Its contents are discarded.
pub fn give(mut buf: BytesMut) {
    buf.clear();
    // On an empty, uniquely owned BytesMut this reclaims the space already allocated
    // (bytes consumed by `advance`) without allocating.
    buf.reserve(BUFFER_SIZE);
    if buf.capacity() > 2 * BUFFER_SIZE {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < MAX_FREE {
            free.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn buffers_are_reused_and_big_ones_dropped() {
        let mut b = take();
        b.extend_from_slice(&[1; 100]);
        b.advance(100);
        let ptr = b.as_ptr() as usize;
        give(b);
        let again = take();
        assert!(again.is_empty());
        assert!(again.capacity() >= BUFFER_SIZE);
        assert!((again.as_ptr() as usize).abs_diff(ptr) <= 100);
        let mut big = BytesMut::with_capacity(BUFFER_SIZE * 8);
        big.extend_from_slice(&[0; 10]);
        give(big);
        assert!(take().capacity() <= 2 * BUFFER_SIZE);
    }
}
