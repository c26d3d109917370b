//! The session's protocol state as enums, each changed in one place: the transaction
//! and the batch at a request's end (ReadyForQuery, Sync, or an error the proxy
//! reports itself), the pooling mode when the client gets pinned.

use crate::protocol::tags::Frontend;
use crate::query::PinReason;

/// The transaction status of the last ReadyForQuery relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tx {
    Idle,
    InTransaction,
    Failed,
}

impl Tx {
    pub fn from_status(status: u8) -> Tx {
        match status {
            b'T' => Tx::InTransaction,
            b'E' => Tx::Failed,
            _ => Tx::Idle,
        }
    }

    /// The ReadyForQuery status byte.
    pub fn status(self) -> u8 {
        match self {
            Tx::Idle => b'I',
            Tx::InTransaction => b'T',
            Tx::Failed => b'E',
        }
    }
}

/// Where the client is in the extended protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Every message sent so far was followed by its Sync (or was a simple Query).
    Synced,
    /// Extended-protocol messages went after the last Sync: the server is mid-batch and
    /// must stay with this client.
    Open,
    /// After an error the proxy reported itself: client messages are dropped up to the
    /// next Sync, as PostgreSQL does.
    Discarding,
}

/// How the client holds a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// One server for the whole session.
    Session,
    /// A server per transaction, given back at the ReadyForQuery that ends it; session
    /// effects are watched for.
    Transaction,
    /// Was transaction mode, but state that cannot move keeps the server for good.
    Pinned(PinReason),
}

/// Whether the client is still there to read answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Here,
    /// It sent Terminate (or left during COPY): only the server's answers are awaited.
    Leaving,
}

/// Request accounting and the states above.
#[derive(Debug)]
pub struct State {
    pub tx: Tx,
    pub batch: Batch,
    pub pooling: Pooling,
    pub client: Client,
    /// Requests (Query, Sync, FunctionCall) framed whose ReadyForQuery has not been
    /// relayed yet.
    pub pending: u32,
    /// Requests framed, and answered, since the session began.
    pub framed: u64,
    pub answered: u64,
}

impl State {
    pub fn new(pooling: Pooling) -> State {
        State {
            tx: Tx::Idle,
            batch: Batch::Synced,
            pooling,
            client: Client::Here,
            pending: 0,
            framed: 0,
            answered: 0,
        }
    }

    /// Transaction mode, not pinned: the server goes back between transactions.
    pub fn pools_per_transaction(&self) -> bool {
        self.pooling == Pooling::Transaction
    }

    /// Nothing owed, no transaction, no open batch: the server may go back.
    pub fn idle(&self) -> bool {
        self.pending == 0 && self.tx == Tx::Idle && self.batch != Batch::Open
    }

    /// A client message goes to the server.
    pub fn sent(&mut self, tag: Frontend) {
        if tag.ends_request() {
            self.pending += 1;
            self.framed += 1;
            self.batch = Batch::Synced;
        } else if tag.opens_batch() {
            self.batch = Batch::Open;
        }
    }

    /// The server's ReadyForQuery with `status` went to the client.
    pub fn ready(&mut self, status: u8) {
        self.tx = Tx::from_status(status);
        self.pending = self.pending.saturating_sub(1);
        self.answered += 1;
    }

    /// The proxy failed every waiting request itself; an open batch now discards up to
    /// its Sync. Returns how many requests were failed and whether a batch was open.
    pub fn failed_locally(&mut self) -> (u32, bool) {
        let requests = self.pending;
        let open_batch = requests == 0 || self.batch == Batch::Open;
        self.batch = match open_batch {
            true => Batch::Discarding,
            false => Batch::Synced,
        };
        self.pending = 0;
        self.answered = self.framed;
        (requests, open_batch)
    }

    /// The Sync that ends a discarded batch (answered by the proxy).
    pub fn discard_done(&mut self) {
        self.batch = Batch::Synced;
    }

    /// Parse-only requests answered by the proxy: the batch they opened is closed.
    pub fn answered_locally(&mut self) {
        self.batch = Batch::Synced;
    }

    /// A Sync the proxy adds for a departing client's unsynced batch.
    pub fn sync_added(&mut self) {
        if self.pending == 0 {
            self.pending += 1;
            self.framed += 1;
            self.batch = Batch::Synced;
        }
    }

    pub fn pin(&mut self, reason: PinReason) {
        self.pooling = Pooling::Pinned(reason);
    }

    pub fn pinned(&self) -> Option<PinReason> {
        match self.pooling {
            Pooling::Pinned(reason) => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_change_at_ready_for_query_only() {
        let mut s = State::new(Pooling::Transaction);
        s.sent(Frontend::Query);
        assert_eq!((s.pending, s.tx), (1, Tx::Idle));
        s.ready(b'T');
        assert_eq!((s.pending, s.tx, s.answered), (0, Tx::InTransaction, 1));
        assert!(!s.idle());
        s.sent(Frontend::Query);
        s.ready(b'E');
        assert_eq!(s.tx, Tx::Failed);
        s.sent(Frontend::Query);
        s.ready(b'I');
        assert!(s.idle());
    }

    #[test]
    fn batches_open_with_extended_messages_and_close_at_sync() {
        let mut s = State::new(Pooling::Session);
        s.sent(Frontend::Parse);
        s.sent(Frontend::Bind);
        assert_eq!(s.batch, Batch::Open);
        assert!(!s.idle(), "mid-batch");
        s.sent(Frontend::Sync);
        assert_eq!((s.batch, s.pending), (Batch::Synced, 1));
        s.ready(b'I');
        assert!(s.idle());
    }

    #[test]
    fn a_local_failure_discards_an_open_batch_until_its_sync() {
        let mut s = State::new(Pooling::Transaction);
        s.sent(Frontend::Parse);
        assert_eq!(s.failed_locally(), (0, true));
        assert_eq!(s.batch, Batch::Discarding);
        s.discard_done();
        assert_eq!(s.batch, Batch::Synced);
        s.sent(Frontend::Query);
        assert_eq!(s.failed_locally(), (1, false));
        assert_eq!(
            (s.batch, s.pending, s.answered),
            (Batch::Synced, 0, s.framed)
        );
    }

    #[test]
    fn pinning_ends_transaction_pooling() {
        let mut s = State::new(Pooling::Transaction);
        assert!(s.pools_per_transaction());
        s.pin(PinReason::Listen);
        assert!(!s.pools_per_transaction());
        assert_eq!(s.pinned(), Some(PinReason::Listen));
        assert_eq!(Tx::from_status(b'T').status(), b'T');
    }
}
