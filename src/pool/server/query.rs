//! Queries the proxy runs itself on a server connection (settings read-back, resets,
//! health checks): one simple-protocol exchange up to ReadyForQuery, within a limit.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::ServerError;
use super::ServerConn;
use crate::protocol::messages::{self, parse_error_fields, parse_parameter_status};
use crate::protocol::{Direction, FrameScanner, Scan};

impl ServerConn {
    /// Runs one simple-protocol query and reads up to its ReadyForQuery, discarding rows
    /// but keeping ParameterStatus updates. A server error is returned after the
    /// ReadyForQuery, so the connection stays in a known state.
    pub async fn simple_query(&mut self, sql: &str, limit: Duration) -> Result<(), ServerError> {
        let mut out = BytesMut::new();
        messages::query(&mut out, sql);
        self.exchange(&out, limit, None).await
    }

    /// Runs `sql` and returns its rows as text (NULL as `None`).
    pub async fn query_rows(&mut self, sql: &str, limit: Duration) -> Result<Rows, ServerError> {
        let mut out = BytesMut::new();
        messages::query(&mut out, sql);
        let mut rows = Rows::new();
        self.exchange(&out, limit, Some(&mut rows)).await?;
        Ok(rows)
    }

    /// Cheapest possible round trip: a lone Sync is answered with ReadyForQuery.
    pub async fn ping(&mut self, limit: Duration) -> Result<(), ServerError> {
        self.exchange(b"S\0\0\0\x04", limit, None).await
    }

    async fn exchange(
        &mut self,
        request: &[u8],
        limit: Duration,
        rows: Option<&mut Rows>,
    ) -> Result<(), ServerError> {
        self.pending += 1;
        let work = async {
            self.stream.write_all(request).await?;
            self.read_until_ready(rows).await
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => {
                self.poisoned = true;
                Err(ServerError::Timeout {
                    address: self.address.to_string(),
                    after: limit,
                })
            }
        }
    }

    async fn read_until_ready(&mut self, mut rows: Option<&mut Rows>) -> Result<(), ServerError> {
        let mut buf = BytesMut::with_capacity(4096);
        let mut scanner = FrameScanner::new(Direction::Backend, usize::MAX);
        let mut first_error = None;
        loop {
            match scanner.next(&buf) {
                Ok(Scan::Frame { tag, len }) => {
                    let body = &buf[5..len];
                    match tag {
                        b'S' => {
                            if let Some((k, v)) = parse_parameter_status(body) {
                                let (k, v) = (k.to_string(), v.to_string());
                                self.note_parameter(&k, &v);
                            }
                        }
                        b'D' => {
                            if let Some(rows) = rows.as_deref_mut() {
                                rows.push(data_row(body));
                            }
                        }
                        b'E' if first_error.is_none() => {
                            first_error = Some((parse_error_fields(body), buf[..len].to_vec()));
                        }
                        b'Z' => {
                            self.tx_status = body.first().copied().unwrap_or(b'I');
                            self.pending = self.pending.saturating_sub(1);
                            if self.pending == 0 {
                                return match first_error {
                                    None => Ok(()),
                                    Some((fields, raw)) => Err(ServerError::Query {
                                        fields,
                                        raw: raw.into(),
                                    }),
                                };
                            }
                        }
                        _ => {}
                    }
                    buf.advance(len);
                }
                Ok(Scan::Partial { len, .. }) => buf.advance(len),
                Ok(Scan::NeedMore) => {
                    if self.stream.read_buf(&mut buf).await? == 0 {
                        self.poisoned = true;
                        return Err(ServerError::Closed);
                    }
                }
                Err(e) => return Err(ServerError::Protocol(e.to_string())),
            }
        }
    }
}

/// Rows of a query the proxy runs itself, as text.
pub type Rows = Vec<Vec<Option<String>>>;

/// The text values of a DataRow body (a malformed one reads as the columns seen so far).
fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let mut values = Vec::new();
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return values;
    };
    let mut pos = 2;
    for _ in 0..count {
        let Some(len) = body
            .get(pos..pos + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        pos += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let Some(value) = body.get(pos..pos + len as usize) else {
            break;
        };
        values.push(Some(String::from_utf8_lossy(value).into_owned()));
        pos += len as usize;
    }
    values
}
