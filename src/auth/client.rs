//! Authenticating a client on its socket: the SCRAM-SHA-256, md5 or trust exchange,
//! ending in AuthenticationOk or the exact error PostgreSQL would send.

use bytes::BytesMut;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::md5::md5_verify;
use super::scram::{ScramError, ScramServer};
use super::{AuthError, Authenticator, Secret};
use crate::config::{AuthType, Config, PoolSettings, Upstream};
use crate::pool::ServerAuth;
use crate::protocol::messages;
use crate::protocol::startup::{parse_password, parse_sasl_initial};
use crate::protocol::ProtocolError;

/// Largest password-family message accepted (PostgreSQL allows a few kB).
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// Runs the configured exchange and sends AuthenticationOk. Returns what the proxy can
/// use to log in to the server as this user.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    config: &Config,
    upstream: &Upstream,
    settings: &PoolSettings,
    user: &str,
) -> Result<ServerAuth, AuthError> {
    let fallback = || match (&upstream.password, user == upstream.user) {
        (Some(p), true) => ServerAuth::Password(p.clone()),
        _ => ServerAuth::None,
    };
    let server_auth = if config.auth_type == AuthType::Trust {
        let secret = auth.lookup(config, upstream, settings, user).await?;
        secret.map(|s| s.server_auth()).unwrap_or_else(fallback)
    } else {
        let secret = auth.lookup(config, upstream, settings, user).await?;
        let use_md5 = config.auth_type == AuthType::Md5
            && matches!(secret, Some(Secret::Md5(_)) | Some(Secret::Plain(_)));
        let proven = if use_md5 {
            md5_exchange(stream, user, secret.as_ref()).await?
        } else {
            scram_exchange(stream, auth, user, secret.as_ref()).await?
        };
        match proven.server_auth() {
            ServerAuth::None => fallback(),
            other => other,
        }
    };
    let mut out = BytesMut::new();
    messages::auth_ok(&mut out);
    stream.write_all(&out).await?;
    Ok(server_auth)
}

/// What a successful exchange proved.
enum Proven {
    Secret(Secret),
    ScramKeys(ServerAuth),
}

impl Proven {
    fn server_auth(self) -> ServerAuth {
        match self {
            Proven::Secret(s) => s.server_auth(),
            Proven::ScramKeys(a) => a,
        }
    }
}

async fn md5_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    secret: Option<&Secret>,
) -> Result<Proven, AuthError> {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut out = BytesMut::new();
    messages::auth_md5(&mut out, salt);
    stream.write_all(&out).await?;
    let body = read_password_message(stream).await?;
    let response = parse_password(&body)?;
    let stored = match secret {
        Some(Secret::Plain(p)) => super::md5::md5_stored(user, p),
        Some(Secret::Md5(h)) => h.clone(),
        _ => return Err(AuthError::Failed(user.to_string())),
    };
    if !md5_verify(&stored, salt, response) {
        return Err(AuthError::Failed(user.to_string()));
    }
    Ok(Proven::Secret(
        secret.cloned().unwrap_or(Secret::Md5(stored)),
    ))
}

async fn scram_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    user: &str,
    secret: Option<&Secret>,
) -> Result<Proven, AuthError> {
    let verifier = secret.and_then(|s| auth.verifier_for(user, s));
    let known = verifier.is_some();
    let verifier = verifier.unwrap_or_else(|| auth.mock_verifier(user));
    let mut server = ScramServer::new(verifier.clone());
    let failed = |e: ScramError| match e {
        ScramError::Malformed(what) => AuthError::Protocol(ProtocolError::Malformed(what)),
        _ => AuthError::Failed(user.to_string()),
    };

    let mut out = BytesMut::new();
    messages::auth_sasl(&mut out, &["SCRAM-SHA-256"]);
    stream.write_all(&out).await?;

    let body = read_password_message(stream).await?;
    let (mechanism, first) = parse_sasl_initial(&body)?;
    if mechanism != "SCRAM-SHA-256" {
        return Err(ProtocolError::Malformed("SASLInitialResponse (unsupported mechanism)").into());
    }
    let server_first = server.handle_client_first(first).map_err(failed)?;
    out.clear();
    messages::auth_sasl_continue(&mut out, server_first);
    stream.write_all(&out).await?;

    let body = read_password_message(stream).await?;
    let (server_final, client_key) = server.handle_client_final(&body).map_err(failed)?;
    if !known {
        return Err(AuthError::Failed(user.to_string()));
    }
    out.clear();
    messages::auth_sasl_final(&mut out, server_final);
    stream.write_all(&out).await?;
    Ok(match secret {
        Some(Secret::Scram(_)) => Proven::ScramKeys(ServerAuth::ScramKeys {
            client_key,
            verifier,
        }),
        Some(other) => Proven::Secret(other.clone()),
        None => Proven::ScramKeys(ServerAuth::None),
    })
}

/// Reads one password-family ('p') message and returns its body.
async fn read_password_message<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, AuthError> {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).await?;
    if header[0] != b'p' {
        return Err(ProtocolError::Unexpected(header[0], "authentication").into());
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=MAX_AUTH_MESSAGE).contains(&len) {
        return Err(ProtocolError::BadLength { tag: b'p', len }.into());
    }
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    Ok(body)
}
