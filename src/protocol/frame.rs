//! Splitting a byte stream into protocol frames without copying or decoding them.
//!
//! Every message after startup is `tag:u8, len:u32 (counts itself), body`. The proxy only
//! needs whole frames for the few messages it inspects; bulk frames (DataRow, CopyData,
//! Bind) may be forwarded piece by piece, so a 20 MB row never sits whole in memory.

use super::ProtocolError;

/// Length of a frame header: tag plus length.
pub const HEADER_LEN: usize = 5;

/// Frames longer than this may be forwarded in pieces (rows, COPY data, big Binds).
pub const STREAM_AT: usize = 32 * 1024;

/// One step of scanning a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A complete frame of `len` bytes (header included) starts at the scan position.
    Frame { tag: u8, len: usize },
    /// `len` bytes of a streamable frame (its start or its continuation) can be forwarded
    /// now; the rest of the frame has not arrived yet. `start` is the frame's tag when
    /// these bytes begin the frame (header included).
    Partial { len: usize, start: Option<u8> },
    /// Nothing more can be done until more bytes arrive.
    NeedMore,
}

/// Which side of the connection the bytes come from; decides the legal tags and what
/// may be streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: tags are validated and sizes bounded by `max_message_size`.
    Frontend,
    /// Server to client: trusted, any tag is passed.
    Backend,
}

/// Cursor state for one direction of one connection.
///
/// Invariant: `skip > 0` only while a streamable frame is being passed through; the next
/// frame header is at `skip` bytes past the scan position.
#[derive(Debug)]
pub struct FrameScanner {
    direction: Direction,
    max_len: usize,
    skip: usize,
}

/// How many frames `buf` holds when it is nothing but whole Parse frames of named
/// statements; `None` otherwise.
pub fn named_parses(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    let mut count = 0;
    while pos < buf.len() {
        let header = buf.get(pos..pos + HEADER_LEN)?;
        let len = 1 + u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let named = buf.get(pos + HEADER_LEN).is_some_and(|&first| first != 0);
        if header[0] != b'P' || len < HEADER_LEN || pos + len > buf.len() || !named {
            return None;
        }
        pos += len;
        count += 1;
    }
    Some(count)
}

impl FrameScanner {
    pub fn new(direction: Direction, max_message_size: usize) -> FrameScanner {
        FrameScanner {
            direction,
            max_len: max_message_size,
            skip: 0,
        }
    }

    /// True while part of a frame has been forwarded and the rest has not.
    pub fn mid_frame(&self) -> bool {
        self.skip > 0
    }

    /// Looks at `buf` (the bytes after the scan position) and says what comes first.
    /// Never panics, whatever the bytes.
    pub fn next(&mut self, buf: &[u8]) -> Result<Scan, ProtocolError> {
        if self.skip > 0 {
            if buf.is_empty() {
                return Ok(Scan::NeedMore);
            }
            let len = self.skip.min(buf.len());
            self.skip -= len;
            return Ok(Scan::Partial { len, start: None });
        }
        if buf.len() < HEADER_LEN {
            return Ok(Scan::NeedMore);
        }
        let tag = buf[0];
        let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        self.check(tag, declared)?;
        let total = declared + 1;
        if buf.len() >= total {
            return Ok(Scan::Frame { tag, len: total });
        }
        // Only big frames are forwarded before they are whole: a small one split by a
        // read boundary waits for its rest, so the proxy can read (and rename) it whole.
        if total > STREAM_AT && self.streamable(tag) {
            self.skip = total - buf.len();
            return Ok(Scan::Partial {
                len: buf.len(),
                start: Some(tag),
            });
        }
        Ok(Scan::NeedMore)
    }

    fn check(&self, tag: u8, declared: usize) -> Result<(), ProtocolError> {
        if declared < 4 {
            return Err(ProtocolError::BadLength { tag, len: declared });
        }
        if self.direction == Direction::Frontend {
            if !is_frontend_tag(tag) {
                return Err(ProtocolError::UnknownMessage(tag));
            }
            if declared > self.max_len {
                return Err(ProtocolError::TooLarge {
                    tag,
                    len: declared,
                    max: self.max_len,
                });
            }
        }
        Ok(())
    }

    fn streamable(&self, tag: u8) -> bool {
        match self.direction {
            Direction::Frontend => matches!(tag, b'd' | b'B'),
            Direction::Backend => matches!(tag, b'D' | b'd'),
        }
    }
}

/// Message types a client may send after startup (protocol 3.0).
fn is_frontend_tag(tag: u8) -> bool {
    matches!(
        tag,
        b'B' | b'C' | b'd' | b'c' | b'f' | b'D' | b'E' | b'H' | b'F' | b'P' | b'Q' | b'S' | b'X'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn whole_frames_and_need_more() {
        let mut s = FrameScanner::new(Direction::Frontend, 1 << 20);
        let q = frame(b'Q', b"select 1\0");
        assert_eq!(
            s.next(&q).unwrap(),
            Scan::Frame {
                tag: b'Q',
                len: q.len()
            }
        );
        assert_eq!(s.next(&q[..7]).unwrap(), Scan::NeedMore);
        assert_eq!(s.next(&q[..3]).unwrap(), Scan::NeedMore);
    }

    #[test]
    fn streams_large_data_rows_in_pieces() {
        let mut s = FrameScanner::new(Direction::Backend, usize::MAX);
        // A small row split by a read boundary waits for the rest.
        let small = frame(b'D', &[7u8; 100]);
        assert_eq!(s.next(&small[..30]).unwrap(), Scan::NeedMore);
        let row = frame(b'D', &vec![7u8; STREAM_AT + 100]);
        let total = row.len();
        assert_eq!(
            s.next(&row[..30]).unwrap(),
            Scan::Partial {
                len: 30,
                start: Some(b'D')
            }
        );
        assert!(s.mid_frame());
        assert_eq!(
            s.next(&row[30..50]).unwrap(),
            Scan::Partial {
                len: 20,
                start: None
            }
        );
        let mut rest = row[50..].to_vec();
        rest.extend(frame(b'Z', b"I"));
        assert_eq!(
            s.next(&rest).unwrap(),
            Scan::Partial {
                len: total - 50,
                start: None
            }
        );
        assert!(!s.mid_frame());
        assert_eq!(
            s.next(&rest[total - 50..]).unwrap(),
            Scan::Frame { tag: b'Z', len: 6 }
        );
    }

    #[test]
    fn rejects_bad_frontend_frames() {
        let mut s = FrameScanner::new(Direction::Frontend, 1024);
        assert_eq!(
            s.next(&frame(b'?', b"")),
            Err(ProtocolError::UnknownMessage(b'?'))
        );
        assert!(matches!(
            s.next(&[b'Q', 0, 0, 0, 2]),
            Err(ProtocolError::BadLength { .. })
        ));
        assert!(matches!(
            s.next(&[b'Q', 0, 1, 0, 0]),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.push(seed as u8);
            }
            for dir in [Direction::Frontend, Direction::Backend] {
                let mut s = FrameScanner::new(dir, 64);
                let mut pos = 0;
                while let Ok(step) = s.next(&buf[pos..]) {
                    match step {
                        Scan::Frame { len, .. } | Scan::Partial { len, .. } => pos += len,
                        Scan::NeedMore => break,
                    }
                }
            }
        }
    }
}
