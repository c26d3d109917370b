//! Authenticating a client on its socket: the configured exchange (SCRAM-SHA-256, md5,
//! trust, or pass-through to the server), ending in AuthenticationOk or the exact error
//! PostgreSQL would send.

use bytes::BytesMut;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::md5::md5_verify;
use super::scram::{ScramError, ScramServer};
use super::{AuthError, Authenticator, LoginCtx, Secret};
use crate::config::AuthType;
use crate::pool::ServerAuth;
use crate::protocol::messages;
use crate::protocol::startup::{parse_password, parse_sasl_initial};
use crate::protocol::ProtocolError;

/// Largest password-family message accepted (PostgreSQL allows a few kB).
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// Runs the configured exchange and sends AuthenticationOk. Returns what the proxy can
/// use to log in to the server as this user. Refused attempts count towards the user's
/// failure limit; a user over it is refused before any exchange.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    ctx: &LoginCtx<'_>,
) -> Result<ServerAuth, AuthError> {
    let user = ctx.user;
    if ctx.stale {
        super::passthrough::forget(auth, ctx);
    }
    if let Err(wait) = auth.failures.check(user) {
        return Err(AuthError::RateLimited {
            user: user.to_string(),
            retry_secs: wait.as_secs_f64().ceil() as u64,
        });
    }
    let result = match ctx.config.effective_auth_type() {
        AuthType::Passthrough => super::passthrough::authenticate(stream, auth, ctx).await,
        AuthType::Trust => trusted(auth, ctx).await,
        kind => checked(stream, auth, ctx, kind == AuthType::Md5).await,
    };
    match &result {
        Ok(_) => auth.failures.succeeded(user),
        Err(e) if e.is_credential_failure() => auth.failures.failed(user),
        Err(_) => {}
    }
    let server_auth = result?;
    let mut out = BytesMut::new();
    messages::auth_ok(&mut out);
    stream.write_all(&out).await?;
    Ok(server_auth)
}

/// The upstream URL's password, when the client is the upstream URL's user.
fn fallback(ctx: &LoginCtx<'_>) -> ServerAuth {
    match (&ctx.upstream.password, ctx.user == ctx.upstream.user) {
        (Some(p), true) => ServerAuth::Password(p.clone()),
        _ => ServerAuth::None,
    }
}

/// `trust`: no exchange; the server gets whatever secret is known for the user.
async fn trusted(auth: &Authenticator, ctx: &LoginCtx<'_>) -> Result<ServerAuth, AuthError> {
    let secret = auth
        .lookup(ctx.config, ctx.upstream, ctx.settings, ctx.user)
        .await?;
    Ok(secret
        .map(|s| s.server_auth())
        .unwrap_or_else(|| fallback(ctx)))
}

/// `scram-sha-256` or `md5`: checked against `[[users]]` or `auth_query`.
async fn checked<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    ctx: &LoginCtx<'_>,
    md5: bool,
) -> Result<ServerAuth, AuthError> {
    let user = ctx.user;
    let secret = auth
        .lookup(ctx.config, ctx.upstream, ctx.settings, user)
        .await?;
    let use_md5 = md5 && matches!(secret, Some(Secret::Md5(_)) | Some(Secret::Plain(_)));
    let unknown = unknown_reason(ctx);
    let proven = if use_md5 {
        md5_exchange(stream, user, secret.as_ref(), &unknown).await?
    } else {
        scram_exchange(stream, auth, user, secret.as_ref(), &unknown).await?
    };
    Ok(match proven {
        ServerAuth::None => fallback(ctx),
        other => other,
    })
}

/// Why a user without a secret cannot log in, for the log.
fn unknown_reason(ctx: &LoginCtx<'_>) -> String {
    let user = ctx.user;
    match (ctx.config.user(user), &ctx.config.auth_query) {
        (Some(_), _) => format!("the [[users]] entry for \"{user}\" has no password"),
        (None, Some(_)) => format!("auth_query returned no password for user \"{user}\""),
        (None, None) => format!("no [[users]] entry and no auth_query for user \"{user}\""),
    }
}

/// The md5 exchange against `secret`; `unknown` is the log reason when there is none.
pub(super) async fn md5_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    secret: Option<&Secret>,
    unknown: &str,
) -> Result<ServerAuth, AuthError> {
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
        Some(Secret::Scram(_)) => {
            return Err(AuthError::failed(user, "a SCRAM secret cannot check md5"))
        }
        None => return Err(AuthError::failed(user, unknown)),
    };
    if !md5_verify(&stored, salt, response) {
        return Err(AuthError::failed(user, "wrong password (md5)"));
    }
    let secret = secret.cloned().unwrap_or(Secret::Md5(stored));
    Ok(secret.server_auth())
}

/// The SCRAM-SHA-256 exchange against `secret` (a mock one when there is none, so an
/// unknown user fails the same way as a wrong password). With a SCRAM verifier the
/// result carries the ClientKey the client proved (pass-through keys).
pub(super) async fn scram_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    user: &str,
    secret: Option<&Secret>,
    unknown: &str,
) -> Result<ServerAuth, AuthError> {
    let verifier = secret.and_then(|s| auth.verifier_for(user, s));
    let known = verifier.is_some();
    let verifier = verifier.unwrap_or_else(|| auth.mock_verifier(user));
    let mut server = ScramServer::new(verifier.clone());
    let failed = |e: ScramError| match e {
        ScramError::Malformed(what) => AuthError::Protocol(ProtocolError::Malformed(what)),
        ScramError::BadProof if !known => AuthError::failed(user, unknown),
        ScramError::BadProof => AuthError::failed(user, "wrong password (SCRAM proof)"),
        other => AuthError::failed(user, format!("SCRAM exchange failed: {other}")),
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
        return Err(AuthError::failed(user, unknown));
    }
    out.clear();
    messages::auth_sasl_final(&mut out, server_final);
    stream.write_all(&out).await?;
    Ok(match secret {
        Some(Secret::Scram(_)) => ServerAuth::ScramKeys {
            client_key,
            verifier,
        },
        Some(other) => other.server_auth(),
        None => ServerAuth::None,
    })
}

/// Asks for the password in clear (AuthenticationCleartextPassword) and returns it. Only
/// for connections that cannot be overheard (TLS, loopback, Unix socket).
pub(super) async fn ask_cleartext<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<String, AuthError> {
    let mut out = BytesMut::new();
    messages::auth_cleartext(&mut out);
    stream.write_all(&out).await?;
    let body = read_password_message(stream).await?;
    let password = parse_password(&body)?;
    Ok(String::from_utf8_lossy(password).into_owned())
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
