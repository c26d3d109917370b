//! Retrying a request that failed with `cached plan must not change result type` (a
//! table's shape changed under a prepared statement): the statement is prepared again
//! under a new server name and the request sent again, invisibly, where that cannot run
//! anything twice: the request was alone (no other in flight, no transaction open), its
//! failing Bind was the first thing it did, and no later request has gone out.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use crate::protocol::read_cstr;

/// Requests bigger than this are not kept for a retry (COPY data, huge parameters).
const KEEP_AT_MOST: usize = 64 * 1024;
/// Emptied buffers kept for the next requests.
const SPARE_BUFFERS: usize = 4;

/// A copy of one request's frames as they were sent, for a retry.
struct Copy {
    batch: u64,
    bytes: BytesMut,
    /// No other request in flight and no transaction open when it began.
    alone: bool,
    /// Something in it could not be kept (too big, or streamed).
    spoiled: bool,
}

#[derive(Default)]
pub struct Retries {
    copies: VecDeque<Copy>,
    /// Buffers of answered requests, reused: keeping a copy allocates nothing once warm.
    spare: Vec<BytesMut>,
    /// Whether the server has answered anything of the request it is on (a Bind, a row,
    /// a completion): past that, a retry could repeat work.
    progressed: bool,
}

impl Retries {
    /// Keeps a whole frame of request `batch` (`alone` as for its first frame).
    pub fn keep(&mut self, batch: u64, frame: &[u8], alone: bool) {
        if self.copies.back().is_none_or(|c| c.batch != batch) {
            let bytes = self.spare.pop().unwrap_or_default();
            self.copies.push_back(Copy {
                batch,
                bytes,
                alone,
                spoiled: false,
            });
        }
        if let Some(copy) = self.copies.back_mut() {
            if copy.bytes.len() + frame.len() > KEEP_AT_MOST {
                copy.spoiled = true;
                copy.bytes = BytesMut::new();
            } else if !copy.spoiled {
                copy.bytes.extend_from_slice(frame);
            }
        }
    }

    /// Part of a frame was streamed: the request cannot be sent again.
    pub fn spoil(&mut self, batch: u64) {
        match self.copies.back_mut().filter(|c| c.batch == batch) {
            Some(copy) => copy.spoiled = true,
            None => self.copies.push_back(Copy {
                batch,
                bytes: BytesMut::new(),
                alone: false,
                spoiled: true,
            }),
        }
    }

    /// A server frame of the request being answered that shows progress (a Bind, a
    /// row, a completion) went to the client.
    pub fn progress(&mut self) {
        self.progressed = true;
    }

    /// Request `batch` was answered (ReadyForQuery).
    pub fn answered(&mut self, batch: u64) {
        while self.copies.front().is_some_and(|c| c.batch <= batch) {
            if let Some(mut copy) = self.copies.pop_front() {
                if self.spare.len() < SPARE_BUFFERS {
                    copy.bytes.clear();
                    self.spare.push(copy.bytes);
                }
            }
        }
        self.progressed = false;
    }

    /// The request to send again when the ErrorResponse `error` for request `batch`
    /// allows a retry and `last_framed` is the last request framed; the first Bind's
    /// statement is renamed to `fresh` wherever the request uses `stale`.
    pub fn take_retry(&mut self, batch: u64, last_framed: u64, error: &[u8]) -> Option<Retry> {
        let fields = crate::protocol::messages::parse_error_fields(error);
        let plan_changed = fields.code == "0A000"
            && fields
                .message
                .contains("cached plan must not change result type");
        if !plan_changed || self.progressed || batch + 1 != last_framed {
            return None;
        }
        let copy = self.copies.front().filter(|c| c.batch == batch)?;
        if !copy.alone || copy.spoiled {
            return None;
        }
        let stale = first_bind_statement(&copy.bytes)?;
        Some(Retry {
            stale,
            request: copy.bytes.clone(),
        })
    }
}

/// A request to send again.
pub struct Retry {
    pub stale: String,
    pub request: BytesMut,
}

impl Retry {
    /// The request with every Bind and Describe of `stale` naming `fresh` instead.
    pub fn renamed(&self, fresh: &str) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.request.len() + 16);
        let mut pos = 0;
        let buf = &self.request[..];
        while pos + 5 <= buf.len() {
            let len =
                1 + u32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]])
                    as usize;
            let Some(frame) = buf.get(pos..pos + len) else {
                break;
            };
            match rename(frame, &self.stale, fresh) {
                Some(renamed) => out.extend_from_slice(&renamed),
                None => out.extend_from_slice(frame),
            }
            pos += len;
        }
        out
    }
}

/// The statement of the Bind `request` starts with (a request with anything before
/// its Bind, a Parse included, is not sent twice).
fn first_bind_statement(request: &[u8]) -> Option<String> {
    if request.first() != Some(&b'B') || request.len() < 5 {
        return None;
    }
    let len = 1 + u32::from_be_bytes([request[1], request[2], request[3], request[4]]) as usize;
    let body = request.get(5..len)?;
    let mut at = 0;
    read_cstr(body, &mut at)?;
    read_cstr(body, &mut at)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// `frame` (a Bind or a Describe of a statement) naming `fresh` instead of `stale`.
fn rename(frame: &[u8], stale: &str, fresh: &str) -> Option<BytesMut> {
    let body = &frame[5..];
    let (prefix_len, name_at) = match frame[0] {
        b'B' => {
            let mut at = 0;
            read_cstr(body, &mut at)?;
            (at, at)
        }
        b'D' if body.first() == Some(&b'S') => (1, 1),
        _ => return None,
    };
    let mut at = name_at;
    let name = read_cstr(body, &mut at)?;
    if name != stale {
        return None;
    }
    let mut out = BytesMut::with_capacity(frame.len() + fresh.len());
    out.put_u8(frame[0]);
    out.put_u32(0);
    out.put_slice(&body[..prefix_len]);
    out.put_slice(fresh.as_bytes());
    out.put_u8(0);
    out.put_slice(&body[at..]);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn error(code: &str, message: &str) -> Vec<u8> {
        format!("SERROR\0C{code}\0M{message}\0\0").into_bytes()
    }

    #[test]
    fn only_a_lone_request_that_did_nothing_yet_is_retried() {
        let request = [
            frame(b'B', b"\0old\0\0\0\0\0\0\0"),
            frame(b'D', b"P\0"),
            frame(b'E', b"\0\0\0\0\0"),
            frame(b'S', b""),
        ]
        .concat();
        let plan = error("0A000", "cached plan must not change result type");
        let mut r = Retries::default();
        r.keep(3, &request, true);
        assert!(
            r.take_retry(3, 5, &plan).is_none(),
            "a later request went out"
        );
        assert!(r
            .take_retry(3, 4, &error("22012", "division by zero"))
            .is_none());
        let retry = r.take_retry(3, 4, &plan).expect("retried");
        assert_eq!(retry.stale, "old");
        let renamed = retry.renamed("new");
        assert_eq!(&renamed[..16], &frame(b'B', b"\0new\0\0\0\0\0\0\0")[..]);
        assert_eq!(renamed.len(), request.len());
        r.progress();
        assert!(
            r.take_retry(3, 4, &plan).is_none(),
            "the Bind had succeeded"
        );
        r.answered(3);
        let mut busy = Retries::default();
        busy.keep(7, &request, false);
        assert!(busy.take_retry(7, 8, &plan).is_none(), "not alone");
    }
}
