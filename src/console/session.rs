//! One console client after login: reads its messages, runs each Query's commands in
//! order and answers them, turns the extended protocol away, and ends on Terminate,
//! disconnect, SHUTDOWN or the proxy's shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::tls::ClientStream;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::command::{parse, split, Command, Show};
use super::wire::{command_complete, empty_query};
use super::Ctx;
use super::{control, info, pools, slow, stats, Registration};
use crate::protocol::messages::{error_response, ready_for_query, Severity};
use crate::protocol::{read_cstr, ProtocolError};
use crate::session::{report, SessionError};

/// Largest message the console accepts: its commands are short.
const MAX_MESSAGE: usize = 1 << 20;

/// Why a command failed: the SQLSTATE and message of its ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// What happens after a message was answered.
enum Next {
    Continue,
    Close,
    /// SHUTDOWN was answered: start the drain and close this connection.
    Shutdown,
}

pub struct Console {
    state: Arc<Ctx>,
    stream: ClientStream,
    peer: SocketAddr,
    _registration: Registration,
    /// An extended-protocol message was refused; the rest of its batch is skipped until
    /// Sync, as PostgreSQL does after an error.
    failed_batch: bool,
}

impl Console {
    pub fn new(
        state: Arc<Ctx>,
        stream: ClientStream,
        peer: SocketAddr,
        registration: Registration,
    ) -> Console {
        Console {
            state,
            stream,
            peer,
            _registration: registration,
            failed_batch: false,
        }
    }

    pub async fn run(mut self) {
        match self.serve().await {
            Ok(()) => tracing::debug!(peer = %self.peer, "admin console client left"),
            Err(e) => report(&mut self.stream, self.peer, e).await,
        }
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        let shutdown = self.state.draining();
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(SessionError::ShuttingDown),
                frame = read_frame(&mut self.stream) => frame?,
            };
            let Some((tag, body)) = frame else {
                return Ok(());
            };
            let mut out = BytesMut::new();
            let next = self.handle(tag, &body, &mut out).await?;
            self.stream.write_all(&out).await?;
            match next {
                Next::Continue => {}
                Next::Close => return Ok(()),
                Next::Shutdown => {
                    tracing::info!(peer = %self.peer, "SHUTDOWN from the admin console");
                    self.state.begin_drain();
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    async fn handle(
        &mut self,
        tag: u8,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<Next, SessionError> {
        const SIMPLE_ONLY: &str = "admin console supports the simple query protocol only";
        match tag {
            b'Q' => {
                self.failed_batch = false;
                let mut pos = 0;
                let sql = read_cstr(body, &mut pos).ok_or(ProtocolError::Malformed("Query"))?;
                return Ok(self.query(sql, out).await);
            }
            b'X' => return Ok(Next::Close),
            b'S' => {
                self.failed_batch = false;
                ready_for_query(out, b'I');
            }
            b'P' | b'B' | b'D' | b'E' | b'C' if !self.failed_batch => {
                self.failed_batch = true;
                error_response(out, Severity::Error, "08P01", SIMPLE_ONLY);
            }
            b'F' => {
                error_response(out, Severity::Error, "08P01", SIMPLE_ONLY);
                ready_for_query(out, b'I');
            }
            // The rest of a refused batch, Flush, and COPY messages outside COPY.
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'd' | b'c' | b'f' => {}
            other => return Err(ProtocolError::Unexpected(other, "admin console").into()),
        }
        Ok(Next::Continue)
    }

    /// Runs every statement of a Query; the first failure skips the rest.
    async fn query(&mut self, sql: &str, out: &mut BytesMut) -> Next {
        let statements = split(sql);
        if statements.is_empty() {
            empty_query(out);
        }
        let mut next = Next::Continue;
        for stmt in statements {
            let ran = match parse(stmt) {
                Ok(command) => self.execute(command, out).await,
                Err(message) => {
                    match crate::advisor::console::run(self.state.advisor.as_deref(), stmt, out)
                        .await
                    {
                        Some(ran) => ran
                            .map(|()| false)
                            .map_err(|(code, m)| Failure::new(code, m)),
                        None => Err(Failure::new("42601", message)),
                    }
                }
            };
            match ran {
                Ok(false) => {}
                Ok(true) => {
                    next = Next::Shutdown;
                    break;
                }
                Err(failure) => {
                    tracing::debug!(peer = %self.peer, stmt, error = %failure.message, "admin command failed");
                    error_response(out, Severity::Error, failure.code, &failure.message);
                    break;
                }
            }
        }
        ready_for_query(out, b'I');
        next
    }

    /// Runs one command, appending its answer. `Ok(true)` for SHUTDOWN.
    async fn execute(&mut self, command: Command, out: &mut BytesMut) -> Result<bool, Failure> {
        let state = &self.state;
        let rows = match command {
            Command::Show(Show::Pools) => pools::show_pools(state),
            Command::Show(Show::Clients) => pools::show_clients(state),
            Command::Show(Show::Servers) => pools::show_servers(state),
            Command::Show(Show::Databases) => pools::show_databases(state),
            Command::Show(Show::Stats) => stats::show_stats(state),
            Command::Show(Show::StatsTotals) => stats::show_stats_totals(state),
            Command::Show(Show::Lists) => info::show_lists(state),
            Command::Show(Show::Queries(listing)) => stats::show_queries(state, listing)?,
            Command::Show(Show::Plans(fp)) => slow::show_plans(state, fp).await?,
            Command::ExplainFingerprint {
                fingerprint,
                database,
            } => slow::explain_fingerprint(state, fingerprint, database.as_deref()).await?,
            Command::Show(Show::Config) => info::show_config(state),
            Command::Show(Show::Slow) => slow::show_slow(state).await?,
            Command::Show(Show::Alerts) => slow::show_alerts(state).await?,
            Command::Show(Show::Jobs) => slow::show_jobs(state).await?,
            Command::Show(Show::Version) => info::show_version(),
            Command::Cache(c) => crate::cache::console::run(state, c)
                .await
                .map_err(|(code, m)| Failure::new(code, m))?,
            Command::Show(Show::Help) => {
                info::help(out);
                return Ok(false);
            }
            Command::Pause(db) => {
                control::pause(state, db.as_deref()).await?;
                command_complete(out, "PAUSE");
                return Ok(false);
            }
            Command::Resume(db) => {
                control::resume(state, db.as_deref())?;
                command_complete(out, "RESUME");
                return Ok(false);
            }
            Command::Reload => {
                control::reload(state)?;
                command_complete(out, "RELOAD");
                return Ok(false);
            }
            Command::Shutdown => {
                command_complete(out, "SHUTDOWN");
                return Ok(true);
            }
        };
        rows.encode(out);
        Ok(false)
    }
}

/// Reads one message: `None` at a clean end of stream.
async fn read_frame(stream: &mut ClientStream) -> Result<Option<(u8, Vec<u8>)>, SessionError> {
    let mut header = [0u8; 5];
    match stream.read(&mut header[..1]).await? {
        0 => return Ok(None),
        _ => stream.read_exact(&mut header[1..]).await?,
    };
    let tag = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len < 4 {
        return Err(ProtocolError::BadLength { tag, len }.into());
    }
    if len - 4 > MAX_MESSAGE {
        let max = MAX_MESSAGE;
        return Err(ProtocolError::TooLarge { tag, len, max }.into());
    }
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    Ok(Some((tag, body)))
}
