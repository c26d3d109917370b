//! Message tags by direction, so code branches on names instead of byte literals.
//!
//! Two enums because the byte values overlap: `C` is Close from a client and
//! CommandComplete from a server, `D` is Describe or DataRow, `E` Execute or
//! ErrorResponse, `S` Sync or ParameterStatus. Tags the proxy never branches on are
//! `Other` (they are forwarded as they are).

/// A client message's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Flush,
    Sync,
    FunctionCall,
    CopyData,
    CopyDone,
    CopyFail,
    Terminate,
    Other(u8),
}

impl Frontend {
    #[inline]
    pub fn of(tag: u8) -> Frontend {
        match tag {
            b'Q' => Frontend::Query,
            b'P' => Frontend::Parse,
            b'B' => Frontend::Bind,
            b'D' => Frontend::Describe,
            b'E' => Frontend::Execute,
            b'C' => Frontend::Close,
            b'H' => Frontend::Flush,
            b'S' => Frontend::Sync,
            b'F' => Frontend::FunctionCall,
            b'd' => Frontend::CopyData,
            b'c' => Frontend::CopyDone,
            b'f' => Frontend::CopyFail,
            b'X' => Frontend::Terminate,
            other => Frontend::Other(other),
        }
    }

    /// Query, Sync and FunctionCall each get one ReadyForQuery: they end a request.
    #[inline]
    pub fn ends_request(self) -> bool {
        matches!(
            self,
            Frontend::Query | Frontend::Sync | Frontend::FunctionCall
        )
    }

    /// Extended-protocol messages that leave the server mid-batch until a Sync.
    #[inline]
    pub fn opens_batch(self) -> bool {
        matches!(
            self,
            Frontend::Parse
                | Frontend::Bind
                | Frontend::Describe
                | Frontend::Execute
                | Frontend::Close
                | Frontend::Flush
        )
    }

    /// After these the server must hear what was sent so far: a request end, Flush, and
    /// COPY data (the server is waiting for it).
    #[inline]
    pub fn flushes(self) -> bool {
        self.ends_request()
            || matches!(
                self,
                Frontend::Flush | Frontend::CopyData | Frontend::CopyDone | Frontend::CopyFail
            )
    }
}

/// A server message's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    ReadyForQuery,
    CommandComplete,
    ErrorResponse,
    PortalSuspended,
    ParameterStatus,
    ParseComplete,
    BindComplete,
    CloseComplete,
    CopyInResponse,
    CopyOutResponse,
    CopyBothResponse,
    DataRow,
    EmptyQueryResponse,
    Other(u8),
}

impl Backend {
    #[inline]
    pub fn of(tag: u8) -> Backend {
        match tag {
            b'Z' => Backend::ReadyForQuery,
            b'C' => Backend::CommandComplete,
            b'E' => Backend::ErrorResponse,
            b's' => Backend::PortalSuspended,
            b'S' => Backend::ParameterStatus,
            b'1' => Backend::ParseComplete,
            b'2' => Backend::BindComplete,
            b'3' => Backend::CloseComplete,
            b'G' => Backend::CopyInResponse,
            b'H' => Backend::CopyOutResponse,
            b'W' => Backend::CopyBothResponse,
            b'D' => Backend::DataRow,
            b'I' => Backend::EmptyQueryResponse,
            other => Backend::Other(other),
        }
    }

    /// The server answered part of a request (a retry could repeat work after it).
    #[inline]
    pub fn is_progress(self) -> bool {
        matches!(
            self,
            Backend::BindComplete
                | Backend::DataRow
                | Backend::CommandComplete
                | Backend::EmptyQueryResponse
                | Backend::PortalSuspended
                | Backend::CopyInResponse
                | Backend::CopyOutResponse
                | Backend::CopyBothResponse
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_bytes_mean_different_messages_by_direction() {
        assert_eq!(Frontend::of(b'C'), Frontend::Close);
        assert_eq!(Backend::of(b'C'), Backend::CommandComplete);
        assert_eq!(Frontend::of(b'S'), Frontend::Sync);
        assert_eq!(Backend::of(b'S'), Backend::ParameterStatus);
        assert!(Frontend::Sync.ends_request() && !Frontend::Flush.ends_request());
        assert!(Frontend::Flush.flushes() && Frontend::Flush.opens_batch());
        assert!(Backend::DataRow.is_progress() && !Backend::ParseComplete.is_progress());
    }
}
