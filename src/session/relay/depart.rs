//! A client leaving (Terminate, or EOF in COPY FROM STDIN) while its server still owes
//! answers: the server is brought back to a known protocol state on the client's behalf,
//! so it can be rolled back and reused instead of waiting forever for the client.
//!
//! What a departing client leaves, and what happens to it:
//! - requests in flight: their answers are read and discarded (the session bounds the
//!   wait; past it the server is cancelled and closed);
//! - COPY FROM STDIN: the proxy sends CopyFail (and Sync when the COPY came through the
//!   extended protocol, whose Sync the server ignored while copying), so the server
//!   fails the COPY, answers ReadyForQuery and the transaction is rolled back;
//! - COPY TO STDOUT: the rest of the data is read and discarded;
//! - an extended-protocol batch without Sync, or a half-sent message: the server's
//!   position is unknown, so it is closed (as PostgreSQL would end that session);
//! - a failed or open transaction: rolled back when the server is returned.

use super::Relay;

/// CopyFail with the message the server reports in its log.
const COPY_FAIL: &[u8] = b"f\0\0\0\x28client left during COPY (pgsidecar)\0";
const SYNC: &[u8] = b"S\0\0\0\x04";

impl Relay {
    /// The client is leaving: stop reading it, and end a COPY IN it left open.
    pub(super) fn depart(&mut self) {
        self.terminating = true;
        if self.copy_in {
            self.fail_copy();
        }
    }

    /// True once the client has left and only the server's answers are awaited.
    pub fn departing(&self) -> bool {
        self.terminating
    }

    /// Ends the server's COPY FROM STDIN for a client that left. When it cannot tell how
    /// the COPY was started, nothing is sent: the wait runs out and the server is closed.
    pub(super) fn fail_copy(&mut self) {
        let Some(simple) = self.copy_simple else {
            return;
        };
        self.copy_in = false;
        debug_assert_eq!(
            self.cbuf.len(),
            self.c_fwd,
            "nothing unframed after departure"
        );
        self.cbuf.extend_from_slice(COPY_FAIL);
        self.c_fwd += COPY_FAIL.len();
        if !simple {
            self.cbuf.extend_from_slice(SYNC);
            self.c_fwd += SYNC.len();
            if self.pending == 0 {
                // A batch the client never synced: this Sync is a request of its own.
                self.pending += 1;
                self.requests_framed += 1;
                self.unsynced = false;
            }
        }
        tracing::info!(
            simple,
            "client left during COPY FROM STDIN; failing the COPY on its server"
        );
    }

    /// The client ended a COPY IN (CopyDone or CopyFail), perhaps before the server
    /// said it started.
    pub(super) fn note_copy_end(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else {
            self.copy_ends_early += 1;
        }
    }

    /// The server's CopyInResponse: true when the COPY is now open (the client has not
    /// ended it in advance).
    pub(super) fn note_copy_start(&mut self) -> bool {
        if self.copy_ends_early > 0 {
            self.copy_ends_early -= 1;
            return false;
        }
        self.copy_in = true;
        self.copy_simple = self.copying_request_simple();
        true
    }

    /// Records whether the request being framed now is a simple Query.
    pub(super) fn note_request_kind(&mut self, simple: bool) {
        let bit = 1u64 << (self.requests_framed % 64);
        if simple {
            self.simple_requests |= bit;
        } else {
            self.simple_requests &= !bit;
        }
    }

    /// Whether the request the server answers now (the oldest unanswered one, or the
    /// unsynced batch when none is pending) was a simple Query; `None` when more requests
    /// are in flight than are remembered.
    pub(super) fn copying_request_simple(&self) -> Option<bool> {
        if self.pending == 0 {
            return Some(false);
        }
        if self.pending > 64 {
            return None;
        }
        let bit = 1u64 << (self.requests_answered % 64);
        Some(self.simple_requests & bit != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fail_frame_is_well_formed() {
        let declared = u32::from_be_bytes(COPY_FAIL[1..5].try_into().unwrap()) as usize;
        assert_eq!(declared + 1, COPY_FAIL.len());
        assert_eq!(COPY_FAIL.last(), Some(&0));
    }
}
