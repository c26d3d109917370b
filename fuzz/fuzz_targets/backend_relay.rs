//! Backend message handling: what the relay does with a server's bytes (frame them with
//! the backend FrameScanner, stream big rows, follow ReadyForQuery and ParameterStatus,
//! hand CommandComplete / ErrorResponse / PortalSuspended / ReadyForQuery to the
//! statement tracker), interleaved with the client frames the tracker is fed.
//!
//! Input: `[read-boundary seed]` then operations until the input ends:
//! - `c tag len:u16 body` a whole client frame for the tracker;
//! - `b len:u16 bytes` the start of a streamed Bind;
//! - `f len:u16 body` the proxy answers the waiting requests with this ErrorResponse;
//! - any other byte, then `len:u16 bytes`: server bytes (with `0xFE hi lo fill` runs).
//!
//! Asserts, beyond "no panic":
//! - the backend scanner fails only on a length below 4 (the relay then gives the
//!   server up, as lost);
//! - the frames found reading in pieces are the frames of the whole stream, and every
//!   byte is forwarded exactly once, in order;
//! - ReadyForQuery and ParameterStatus are read as the protocol defines them, and the
//!   reported parameters stay one entry per name;
//! - ErrorResponse and ParameterStatus round-trip through the proxy's own encoders,
//!   and the SQLSTATE read is the `C` field's;
//! - the tracker never records more executions than statements were sent, nor more
//!   than the server completed, nor more errors than executions.

#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use common::{declared_len, expand, Chunks, Reader};
use libfuzzer_sys::fuzz_target;
use pgsidecar::fuzzing::{sqlstate_of, TrackerHarness};
use pgsidecar::protocol::frame::{HEADER_LEN, STREAM_AT};
use pgsidecar::protocol::messages::{
    error_response, parameter_status, parse_error_fields, parse_parameter_status, Severity,
};
use pgsidecar::protocol::{Direction, FrameScanner, ProtocolError, Scan};
use pgsidecar::query::{split_statements, Analyzer};

/// One analyzer for the whole run (see `TrackerHarness::new`).
static ANALYZER: OnceLock<Arc<Analyzer>> = OnceLock::new();

/// The relay's view of one server connection, reduced to what it does with the bytes.
struct Relay {
    /// Everything the server sent so far (the relay's buffer, never compacted here).
    sbuf: Vec<u8>,
    /// Bytes framed and forwarded to the client.
    s_fwd: usize,
    sscan: FrameScanner,
    /// Offsets and tags of the frames started.
    starts: Vec<(usize, u8)>,
    streaming_end: Option<usize>,
    tx_status: u8,
    pending: u32,
    reported: Vec<(String, String)>,
    tracker: TrackerHarness,
    /// Statements the tracker was told about, and completions the server sent.
    statements: u64,
    completions: u64,
    /// The proxy failed waiting requests itself (they count as executed).
    failed_by_proxy: bool,
    /// The server sent a frame no framing can follow; the relay gave it up.
    lost: bool,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let mut chunks = Chunks::new(input.u8(), 2048);
    let mut relay = Relay::new();
    let mut raw = Vec::new();
    while !input.is_empty() && relay.sbuf.len() < common::MAX_EXPANDED {
        let op = input.u8();
        let len = usize::from(input.u16());
        let bytes = input.bytes(len);
        match op {
            b'c' if !bytes.is_empty() => relay.client_frame(bytes[0], &bytes[1..]),
            b'b' => relay.tracker.streamed_bind(bytes),
            b'f' => {
                relay.tracker.fail_waiting(bytes);
                relay.failed_by_proxy = true;
            }
            _ => {
                raw.clear();
                expand(bytes, &mut raw);
                // The socket delivers the bytes at arbitrary boundaries.
                let mut at = 0;
                while at < raw.len() {
                    let n = chunks.next_len().min(raw.len() - at);
                    relay.server_bytes(&raw[at..at + n]);
                    at += n;
                }
            }
        }
        relay.check_tracker();
    }
    relay.check_against_whole_stream();
});

impl Relay {
    fn new() -> Relay {
        Relay {
            sbuf: Vec::new(),
            s_fwd: 0,
            sscan: FrameScanner::new(Direction::Backend, usize::MAX),
            starts: Vec::new(),
            streaming_end: None,
            tx_status: b'I',
            pending: 0,
            reported: Vec::new(),
            tracker: TrackerHarness::new(
                ANALYZER
                    .get_or_init(|| Arc::new(Analyzer::new(1000)))
                    .clone(),
            ),
            statements: 0,
            completions: 0,
            failed_by_proxy: false,
            lost: false,
        }
    }

    fn client_frame(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'Q' => {
                let text = body.split(|&b| b == 0).next().unwrap_or_default();
                if body.contains(&0) {
                    if let Ok(sql) = std::str::from_utf8(text) {
                        self.statements += split_statements(sql).count() as u64;
                    }
                }
                self.pending += 1;
            }
            b'E' => self.statements += 1,
            b'S' | b'F' => self.pending += 1,
            _ => {}
        }
        self.tracker.client_frame(tag, body);
    }

    /// As `Relay::scan_server`: frame the new bytes, act on whole frames, pass the rest.
    fn server_bytes(&mut self, bytes: &[u8]) {
        if self.lost {
            return;
        }
        self.sbuf.extend_from_slice(bytes);
        loop {
            let step = match self.sscan.next(&self.sbuf[self.s_fwd..]) {
                Ok(step) => step,
                Err(e) => {
                    // The relay gives such a server up; only a length below 4 may do it.
                    let rest = &self.sbuf[self.s_fwd..];
                    let expected = ProtocolError::BadLength {
                        tag: rest[0],
                        len: declared_len(rest),
                    };
                    assert!(
                        declared_len(rest) < 4 && e == expected,
                        "the backend scanner failed: {e}"
                    );
                    self.lost = true;
                    return;
                }
            };
            match step {
                Scan::NeedMore => break,
                Scan::Partial { len, start } => {
                    if let Some(tag) = start {
                        assert!(self.streaming_end.is_none());
                        assert!(matches!(tag, b'D' | b'd'), "streamed {tag}");
                        let total = declared_len(&self.sbuf[self.s_fwd..]) + 1;
                        assert!(total > STREAM_AT);
                        self.starts.push((self.s_fwd, tag));
                        self.streaming_end = Some(self.s_fwd + total);
                    }
                    self.s_fwd += len;
                    let end = self.streaming_end.expect("a continuation of no frame");
                    assert!(self.s_fwd <= end, "a streamed piece ran past its frame");
                    assert_eq!(self.sscan.mid_frame(), self.s_fwd < end);
                    if self.s_fwd == end {
                        self.streaming_end = None;
                    }
                }
                Scan::Frame { tag, len } => {
                    assert!(self.streaming_end.is_none());
                    assert!(len >= HEADER_LEN && self.s_fwd + len <= self.sbuf.len());
                    assert_eq!(declared_len(&self.sbuf[self.s_fwd..]) + 1, len);
                    self.starts.push((self.s_fwd, tag));
                    let body = self.sbuf[self.s_fwd + HEADER_LEN..self.s_fwd + len].to_vec();
                    self.server_frame(tag, &body);
                    self.s_fwd += len;
                }
            }
        }
    }

    fn server_frame(&mut self, tag: u8, body: &[u8]) {
        self.tracker.server_frame(tag, body);
        match tag {
            b'Z' => {
                self.tx_status = body.first().copied().unwrap_or(b'I');
                self.pending = self.pending.saturating_sub(1);
            }
            b'S' => self.parameter_status(body),
            b'E' | b'N' => check_error_fields(body),
            _ => {}
        }
        if matches!(tag, b'C' | b'E' | b's') {
            self.completions += 1;
        }
    }

    fn parameter_status(&mut self, body: &[u8]) {
        let Some((name, value)) = parse_parameter_status(body) else {
            // Only a body without two NUL-terminated UTF-8 strings is ignored.
            let mut parts = body.splitn(3, |&b| b == 0);
            let (a, b) = (parts.next(), parts.next());
            let third = parts.next();
            let ok = third.is_some()
                && a.is_some_and(|s| std::str::from_utf8(s).is_ok())
                && b.is_some_and(|s| std::str::from_utf8(s).is_ok());
            assert!(!ok, "a well-formed ParameterStatus was ignored");
            return;
        };
        let mut encoded = BytesMut::new();
        parameter_status(&mut encoded, name, value);
        assert!(body.starts_with(&encoded[HEADER_LEN..]));
        match self.reported.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.reported.push((name.to_string(), value.to_string())),
        }
        let mut names: Vec<_> = self.reported.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), self.reported.len());
    }

    fn check_tracker(&self) {
        let (calls, errors) = self.tracker.recorded();
        assert!(errors <= calls);
        assert!(
            calls <= self.statements,
            "{calls} executions of {} statements",
            self.statements
        );
        if !self.failed_by_proxy {
            assert!(
                calls <= self.completions,
                "{calls} executions, {} completions",
                self.completions
            );
        }
    }

    /// The same bytes read in one go give the same frames.
    fn check_against_whole_stream(&self) {
        let mut scanner = FrameScanner::new(Direction::Backend, usize::MAX);
        let mut pos = 0;
        let mut starts = Vec::new();
        while let Ok(step) = scanner.next(&self.sbuf[pos..]) {
            match step {
                Scan::Frame { tag, len } => {
                    starts.push((pos, tag));
                    pos += len;
                }
                Scan::Partial { len, start } => {
                    starts.extend(start.map(|tag| (pos, tag)));
                    pos += len;
                }
                Scan::NeedMore => break,
            }
        }
        assert_eq!(starts, self.starts, "read boundaries changed the framing");
        assert_eq!(
            pos, self.s_fwd,
            "read boundaries changed what was forwarded"
        );
        // What is not forwarded yet is the start of one frame still arriving.
        let rest = &self.sbuf[self.s_fwd..];
        if !self.lost && self.streaming_end.is_none() && rest.len() >= HEADER_LEN {
            assert!(declared_len(rest) + 1 > rest.len());
        }
        assert!(self.s_fwd <= self.sbuf.len());
    }
}

/// The SQLSTATE and message read from an ErrorResponse, and the proxy's own encoding of
/// them read back.
fn check_error_fields(body: &[u8]) {
    let fields = parse_error_fields(body);
    let sqlstate = sqlstate_of(body);
    let mut expected = [b'0'; 5];
    for (slot, b) in expected.iter_mut().zip(fields.code.bytes()) {
        *slot = b;
    }
    assert_eq!(sqlstate, expected);
    if let Some(last_code) = last_field(body, b'C') {
        assert_eq!(fields.code.as_bytes(), last_code);
    }
    let mut encoded = BytesMut::new();
    error_response(&mut encoded, Severity::Error, &fields.code, &fields.message);
    let again = parse_error_fields(&encoded[HEADER_LEN..]);
    assert_eq!((again.code, again.message), (fields.code, fields.message));
    assert_eq!(again.severity, "ERROR");
}

/// The value of the last `kind` field of a well-formed fields list (`None` when the
/// list is malformed before its end, or has no such field).
fn last_field(body: &[u8], kind: u8) -> Option<&[u8]> {
    let mut pos = 0;
    let mut found = None;
    while let Some(&k) = body.get(pos) {
        if k == 0 {
            return found;
        }
        let rest = &body[pos + 1..];
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()?;
        if k == kind {
            found = Some(&rest[..end]);
        }
        pos += 1 + end + 1;
    }
    found
}
