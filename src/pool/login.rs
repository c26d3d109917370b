//! Opening a server connection: TCP connect, TLS negotiation (`server_tls`),
//! StartupMessage, and answering whichever authentication the server asks for
//! (SCRAM-SHA-256, with channel binding over TLS when offered, md5, cleartext or none).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::server::{CancelKey, ServerConn, ServerTarget};
use super::ServerError;
use crate::auth::md5::md5_response_from_stored;
use crate::auth::scram::{KeyBinding, ScramKeyClient, ScramVerifier};
use crate::config::ServerTlsMode;
use crate::protocol::messages::{parse_error_fields, parse_parameter_status};
use crate::protocol::{read_cstr, Direction, FrameScanner, Scan};
use crate::tls::{end_point_hash, ServerStream, ServerTls};

/// What the proxy can prove to the server on a user's behalf.
#[derive(Clone, Default)]
pub enum ServerAuth {
    /// Nothing: works only when the server trusts the connection.
    #[default]
    None,
    /// A plaintext password answers every method.
    Password(String),
    /// An `md5…` hash answers md5.
    Md5Hash(String),
    /// The ClientKey a client proved plus the verifier it was checked against: answers
    /// SCRAM-SHA-256 when the server stores the same verifier (SCRAM pass-through).
    ScramKeys {
        client_key: [u8; 32],
        verifier: ScramVerifier,
    },
}

impl ServerAuth {
    /// True when this carries anything at all to answer a challenge with.
    pub fn is_some(&self) -> bool {
        !matches!(self, ServerAuth::None)
    }
}

/// How the server checked a login, and what a password-derived secret must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LoginMethod {
    /// No password was asked for (trust, peer, or a certificate).
    #[default]
    Trust,
    Cleartext,
    Md5,
    /// SCRAM-SHA-256 with the salt and iteration count the server stores for the user.
    Scram {
        salt: Vec<u8>,
        iterations: u32,
    },
}

enum Scram {
    Password(ScramSha256),
    Keys(ScramKeyClient),
}

/// SCRAM state across the login's authentication messages.
struct Login {
    state: Option<Scram>,
    /// `tls-server-end-point` data, when the connection is TLS.
    binding: Option<Vec<u8>>,
    /// SCRAM-SHA-256-PLUS was chosen.
    bound: bool,
    /// What the server asked for so far.
    method: LoginMethod,
}

/// Connects and logs in, within `limit` for the whole exchange.
pub async fn open(
    target: &ServerTarget,
    auth: &ServerAuth,
    tls: &ServerTls,
    limit: Duration,
    open_count: Arc<AtomicUsize>,
) -> Result<Box<ServerConn>, ServerError> {
    let address = target.address();
    let work = async {
        let stream = ServerStream::connect(&target.host, target.port)
            .await
            .map_err(|source| ServerError::Connect {
                address: address.clone(),
                source,
            })?;
        let stream = match stream {
            ServerStream::Plain(tcp) => negotiate_tls(tcp, tls, target, &address).await?,
            // A Unix socket is local: PostgreSQL offers no SSL there, so none is asked.
            unix => unix,
        };
        // Boxed: a connection moves between the idle list and its borrowers on every
        // checkout, and a pointer moves cheaper than the whole struct.
        let mut conn = Box::new(ServerConn::new(stream, address.clone().into(), open_count));
        let binding = conn.stream.tls_session().and_then(|s| {
            let cert = s.get_ref().1.peer_certificates()?.first()?;
            Some(end_point_hash(cert))
        });
        startup(&mut conn, target, auth, binding).await?;
        Ok(conn)
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(ServerError::Timeout {
            address,
            after: limit,
        }),
    }
}

/// Asks for TLS unless `server_tls` is disable, and runs the handshake when the server
/// agrees. A refusal is an error unless the mode is `prefer`.
async fn negotiate_tls(
    mut tcp: TcpStream,
    tls: &ServerTls,
    target: &ServerTarget,
    address: &str,
) -> Result<ServerStream, ServerError> {
    if tls.mode == ServerTlsMode::Disable {
        return Ok(ServerStream::Plain(tcp));
    }
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    tcp.write_all(&SSL_REQUEST).await?;
    let mut answer = [0u8; 1];
    if tcp.read(&mut answer).await? == 0 {
        return Err(ServerError::Closed);
    }
    match answer[0] {
        b'S' => {
            let session =
                tls.handshake(tcp, &target.host)
                    .await
                    .map_err(|source| ServerError::Tls {
                        address: address.to_string(),
                        source,
                    })?;
            Ok(ServerStream::tls(session))
        }
        b'N' if tls.mode == ServerTlsMode::Prefer => Ok(ServerStream::Plain(tcp)),
        b'N' => Err(ServerError::TlsRefused {
            address: address.to_string(),
            mode: tls.mode.as_str(),
        }),
        other => Err(ServerError::Protocol(format!(
            "unexpected answer {other:#04x} to SSLRequest"
        ))),
    }
}

#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
async fn startup(
    conn: &mut ServerConn,
    target: &ServerTarget,
    auth: &ServerAuth,
    binding: Option<Vec<u8>>,
) -> Result<(), ServerError> {
    let mut out = BytesMut::new();
    let params = [
        ("user", target.user.as_str()),
        ("database", target.dbname.as_str()),
    ];
    frontend::startup_message(params, &mut out)?;
    conn.stream.write_all(&out).await?;

    let mut buf = BytesMut::with_capacity(1024);
    let mut scanner = FrameScanner::new(Direction::Backend, usize::MAX);
    let mut scram = Login {
        state: None,
        binding,
        bound: false,
        method: LoginMethod::Trust,
    };
    loop {
        let (tag, len) = match scanner.next(&buf) {
            Ok(Scan::Frame { tag, len }) => (tag, len),
            Ok(Scan::NeedMore) => {
                if conn.stream.read_buf(&mut buf).await? == 0 {
                    return Err(ServerError::Closed);
                }
                continue;
            }
            Ok(Scan::Partial { .. }) | Err(_) => {
                return Err(ServerError::Protocol(
                    "unexpected message during login".into(),
                ))
            }
        };
        let body = &buf[5..len];
        match tag {
            b'R' => {
                out.clear();
                answer_auth(body, target, auth, &mut scram, &mut out)?;
                if !out.is_empty() {
                    conn.stream.write_all(&out).await?;
                }
            }
            b'E' => {
                return Err(ServerError::Rejected {
                    fields: parse_error_fields(body),
                    raw: buf[..len].to_vec().into(),
                })
            }
            b'S' => {
                if let Some((k, v)) = parse_parameter_status(body) {
                    let (k, v) = (k.to_string(), v.to_string());
                    conn.note_parameter(&k, &v);
                }
            }
            b'K' if body.len() >= 8 => {
                conn.pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                conn.secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
            }
            b'Z' => {
                conn.defaults = conn
                    .reported
                    .iter()
                    .map(|(k, (_, v))| (k.clone(), v.clone()))
                    .collect();
                conn.drifted.clear();
                conn.channel_binding = scram.bound;
                conn.login_method = std::mem::take(&mut scram.method);
                conn.cancel_key = Arc::new(CancelKey {
                    address: conn.address.clone(),
                    pid: conn.pid,
                    secret: conn.secret,
                });
                return Ok(());
            }
            _ => {}
        }
        buf.advance(len);
    }
}

/// Answers one Authentication message, appending the reply (if any) to `out`.
fn answer_auth(
    body: &[u8],
    target: &ServerTarget,
    auth: &ServerAuth,
    login: &mut Login,
    out: &mut BytesMut,
) -> Result<(), ServerError> {
    let scram = &mut login.state;
    let malformed = || ServerError::Protocol("malformed authentication request".into());
    let code = body
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(malformed)?;
    let data = &body[4..];
    let user = &target.user;
    match code {
        3 => login.method = LoginMethod::Cleartext,
        5 => login.method = LoginMethod::Md5,
        11 => {
            if let Some((salt, iterations)) = crate::auth::scram::server_first_salt(data) {
                login.method = LoginMethod::Scram { salt, iterations };
            }
        }
        _ => {}
    }
    match (code, auth) {
        (0, _) => {}
        (3, ServerAuth::Password(p)) => frontend::password_message(p.as_bytes(), out)?,
        (5, ServerAuth::Password(p)) | (5, ServerAuth::Md5Hash(p)) => {
            let salt: [u8; 4] = data
                .get(..4)
                .ok_or_else(malformed)?
                .try_into()
                .map_err(|_| malformed())?;
            let response = match auth {
                ServerAuth::Password(_) => md5_hash(user.as_bytes(), p.as_bytes(), salt),
                _ => md5_response_from_stored(p, salt),
            };
            frontend::password_message(response.as_bytes(), out)?;
        }
        (10, _) => start_scram(data, user, auth, login, out)?,
        (11, _) => {
            let reply = match scram.as_mut() {
                Some(Scram::Password(s)) => {
                    s.update(data)?;
                    s.message().to_vec()
                }
                Some(Scram::Keys(k)) => k.handle_server_first(data).map_err(scram_error(user))?,
                None => return Err(malformed()),
            };
            frontend::sasl_response(&reply, out)?;
        }
        (12, _) => match scram.as_mut() {
            Some(Scram::Password(s)) => s.finish(data)?,
            Some(Scram::Keys(k)) => k.handle_server_final(data).map_err(scram_error(user))?,
            None => return Err(malformed()),
        },
        (3, _) => return Err(missing_secret(user, "a cleartext password")),
        (5, _) => return Err(missing_secret(user, "md5")),
        (other, _) => {
            return Err(ServerError::Auth(format!(
                "server asked for authentication method {other}, which pgsidecar does not support"
            )))
        }
    }
    Ok(())
}

/// Starts a SCRAM exchange: SCRAM-SHA-256-PLUS with `tls-server-end-point` when the
/// connection is TLS and the server offers it, else SCRAM-SHA-256 (flagged "could bind"
/// over TLS, so a server that does offer -PLUS can detect a downgrade).
fn start_scram(
    data: &[u8],
    user: &str,
    auth: &ServerAuth,
    login: &mut Login,
    out: &mut BytesMut,
) -> Result<(), ServerError> {
    let plus = login.binding.is_some() && sasl_mechanisms(data).any(|m| m == SCRAM_SHA_256_PLUS);
    if !plus && !sasl_mechanisms(data).any(|m| m == SCRAM_SHA_256) {
        return Err(ServerError::Auth(format!(
            "server offers no SASL mechanism pgsidecar supports for user \"{user}\""
        )));
    }
    let binding = match (&login.binding, plus) {
        (Some(hash), true) => KeyBinding::EndPoint(hash.clone()),
        (Some(_), false) => KeyBinding::Unrequested,
        (None, _) => KeyBinding::Unsupported,
    };
    let (state, first) = match auth {
        ServerAuth::Password(p) => {
            let channel_binding = match &binding {
                KeyBinding::EndPoint(hash) => ChannelBinding::tls_server_end_point(hash.clone()),
                KeyBinding::Unrequested => ChannelBinding::unrequested(),
                KeyBinding::Unsupported => ChannelBinding::unsupported(),
            };
            let s = ScramSha256::new(p.as_bytes(), channel_binding);
            let first = s.message().to_vec();
            (Scram::Password(s), first)
        }
        ServerAuth::ScramKeys {
            client_key,
            verifier,
        } => {
            let mut k = ScramKeyClient::new(*client_key, verifier).with_binding(binding);
            let first = k.client_first();
            (Scram::Keys(k), first)
        }
        _ => return Err(missing_secret(user, "SCRAM-SHA-256")),
    };
    let mechanism = if plus {
        SCRAM_SHA_256_PLUS
    } else {
        SCRAM_SHA_256
    };
    tracing::debug!(user, mechanism, "SCRAM login to server");
    frontend::sasl_initial_response(mechanism, &first, out)?;
    login.state = Some(state);
    login.bound = plus;
    Ok(())
}

fn sasl_mechanisms(data: &[u8]) -> impl Iterator<Item = &str> {
    let mut pos = 0;
    std::iter::from_fn(move || read_cstr(data, &mut pos).filter(|m| !m.is_empty()))
}

fn missing_secret(user: &str, method: &'static str) -> ServerError {
    ServerError::NoSecret {
        user: user.to_string(),
        method,
    }
}

fn scram_error(user: &str) -> impl Fn(crate::auth::scram::ScramError) -> ServerError + '_ {
    move |e| {
        ServerError::Auth(format!(
            "SCRAM exchange with server failed for user \"{user}\": {e}"
        ))
    }
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
