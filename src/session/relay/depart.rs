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

use super::super::pipeline::Client;
use super::Relay;

/// CopyFail with the message the server reports in its log.
const COPY_FAIL: &[u8] = b"f\0\0\0\x28client left during COPY (pgsidecar)\0";
const SYNC: &[u8] = b"S\0\0\0\x04";

impl Relay {
    /// The client is leaving: stop reading it, and end a COPY IN it left open.
    pub(super) fn depart(&mut self) {
        self.pipe.state.client = Client::Leaving;
        if self.pipe.copy.copy_in {
            self.fail_copy();
        }
    }

    /// Ends the server's COPY FROM STDIN for a client that left. When it cannot tell how
    /// the COPY was started, nothing is sent: the wait runs out and the server is closed.
    pub(super) fn fail_copy(&mut self) {
        let Some(simple) = self.pipe.copy.simple else {
            return;
        };
        self.pipe.copy.copy_in = false;
        let w = &mut self.wire;
        debug_assert_eq!(w.cbuf.len(), w.c_fwd, "nothing unframed after departure");
        w.cbuf.extend_from_slice(COPY_FAIL);
        w.c_fwd += COPY_FAIL.len();
        if !simple {
            w.cbuf.extend_from_slice(SYNC);
            w.c_fwd += SYNC.len();
            // A batch the client never synced: this Sync is a request of its own.
            self.pipe.state.sync_added();
        }
        tracing::info!(
            simple,
            "client left during COPY FROM STDIN; failing the COPY on its server"
        );
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
