//! Frontend framing: the relay's FrameScanner on client bytes, read whole and read in
//! pieces at arbitrary boundaries.
//!
//! Input: `[max_message_size selector] [read-boundary seed] stream...` where the stream
//! may use `0xFE hi lo fill` runs (see `common::expand`).
//!
//! Asserts, beyond "no panic":
//! - reading in pieces finds exactly the frames (offset and tag) and the error (offset
//!   and kind) that reading everything at once finds: read boundaries never matter;
//! - every frame and every error is justified by its header (legal tag, 4 <= declared
//!   <= max_message_size), and only big Binds and CopyData are streamed;
//! - streamed pieces of a frame add up to exactly that frame;
//! - `named_parses` agrees with the scanner.

#![no_main]

#[path = "common.rs"]
mod common;

use common::{declared_len, expand, Chunks, Reader};
use libfuzzer_sys::fuzz_target;
use pgsidecar::protocol::frame::{named_parses, HEADER_LEN, STREAM_AT};
use pgsidecar::protocol::{Direction, FrameScanner, ProtocolError, Scan};

const FRONTEND_TAGS: &[u8] = b"BCdcfDEHFPQSX";
const MAX_SIZES: [usize; 6] = [16, 64, 1024, STREAM_AT * 2, 1 << 20, usize::MAX];

/// What one way of reading found.
#[derive(Debug, PartialEq)]
struct Found {
    /// Offset and tag of each frame that started (whole or streamed).
    starts: Vec<(usize, u8)>,
    /// Offset of the failing header, and the error.
    error: Option<(usize, ProtocolError)>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let max = MAX_SIZES[usize::from(input.u8()) % MAX_SIZES.len()];
    let seed = input.u8();
    let mut stream = Vec::new();
    expand(input.rest(), &mut stream);

    let (whole, whole_end) = scan_whole(&stream, max);
    let (pieces, piece_end) = scan_in_pieces(&stream, max, seed);
    // A frame that is still arriving at the end may have been streamed in part by the
    // piecewise reader; the whole reader sees it too (a start with Partial) or waits.
    assert_eq!(whole, pieces, "read boundaries changed the framing");
    assert!(whole_end <= piece_end && piece_end <= stream.len());

    if let Some(n) = named_parses(&stream) {
        let (all, end) = scan_whole(&stream, usize::MAX);
        assert!(all.error.is_none() && end == stream.len());
        assert_eq!(all.starts.len(), n);
        for &(at, tag) in &all.starts {
            assert_eq!(tag, b'P');
            assert_ne!(
                stream.get(at + HEADER_LEN),
                Some(&0),
                "unnamed Parse counted"
            );
        }
    }
});

/// Checks one step against the header at `at`.
fn check_step(stream: &[u8], at: usize, max: usize, step: &Result<Scan, ProtocolError>) {
    let header = stream.get(at..at + HEADER_LEN);
    match step {
        Ok(Scan::Frame { tag, len }) => {
            let header = header.expect("a frame without a header");
            assert_eq!(header[0], *tag);
            assert!(FRONTEND_TAGS.contains(tag));
            assert_eq!(declared_len(header) + 1, *len);
            assert!(*len >= HEADER_LEN && *len - 1 <= max);
            assert!(at + len <= stream.len());
        }
        Ok(Scan::Partial {
            start: Some(tag),
            len,
        }) => {
            let header = header.expect("a streamed frame without a header");
            assert!(matches!(tag, b'B' | b'd'), "streamed {tag}");
            let total = declared_len(header) + 1;
            assert!(total > STREAM_AT && *len < total && total - 1 <= max);
        }
        Ok(_) => {}
        Err(e) => {
            let header = header.expect("an error without a header");
            let declared = declared_len(header);
            match e {
                ProtocolError::BadLength { tag, len } => {
                    assert!(*len < 4 && *len == declared && *tag == header[0])
                }
                ProtocolError::UnknownMessage(tag) => {
                    assert!(*tag == header[0] && !FRONTEND_TAGS.contains(tag))
                }
                ProtocolError::TooLarge { len, max: m, .. } => {
                    assert!(*len == declared && *len > max && *m == max)
                }
                other => panic!("framing reported {other:?}"),
            }
        }
    }
}

fn scan_whole(stream: &[u8], max: usize) -> (Found, usize) {
    let mut scanner = FrameScanner::new(Direction::Frontend, max);
    let mut found = Found {
        starts: Vec::new(),
        error: None,
    };
    let mut pos = 0;
    loop {
        let step = scanner.next(&stream[pos..]);
        check_step(stream, pos, max, &step);
        match step {
            Ok(Scan::Frame { tag, len }) => {
                found.starts.push((pos, tag));
                pos += len;
            }
            Ok(Scan::Partial { len, start }) => {
                if let Some(tag) = start {
                    found.starts.push((pos, tag));
                }
                assert_eq!(pos + len, stream.len(), "whole input, yet only part used");
                pos += len;
            }
            Ok(Scan::NeedMore) => break,
            Err(e) => {
                found.error = Some((pos, e));
                break;
            }
        }
    }
    (found, pos)
}

/// Reads the stream as the relay does, a piece at a time into one growing buffer.
fn scan_in_pieces(stream: &[u8], max: usize, seed: u8) -> (Found, usize) {
    let mut scanner = FrameScanner::new(Direction::Frontend, max);
    let mut chunks = Chunks::new(seed, 4096);
    let mut found = Found {
        starts: Vec::new(),
        error: None,
    };
    let (mut have, mut pos) = (0, 0);
    // Where the frame being streamed ends, while one is.
    let mut streaming: Option<usize> = None;
    while have < stream.len() {
        have = (have + chunks.next_len()).min(stream.len());
        let buf = &stream[..have];
        loop {
            let step = scanner.next(&buf[pos..]);
            if streaming.is_none() {
                check_step(stream, pos, max, &step);
            }
            match step {
                Ok(Scan::Frame { tag, len }) => {
                    assert!(streaming.is_none());
                    found.starts.push((pos, tag));
                    pos += len;
                }
                Ok(Scan::Partial { len, start }) => {
                    if let Some(tag) = start {
                        assert!(streaming.is_none());
                        found.starts.push((pos, tag));
                        streaming = Some(pos + declared_len(&buf[pos..]) + 1);
                    }
                    pos += len;
                    let end = streaming.expect("a continuation of no frame");
                    assert!(pos <= end, "a streamed piece ran past its frame");
                    assert_eq!(scanner.mid_frame(), pos < end);
                    if pos == end {
                        streaming = None;
                    }
                }
                Ok(Scan::NeedMore) => break,
                Err(e) => {
                    found.error = Some((pos, e));
                    return (found, pos);
                }
            }
        }
    }
    (found, pos)
}
