//! Pass-through logins (`auth_type = "passthrough"`): the server itself checks the
//! credentials a client presents, so the answer is whatever PostgreSQL would say, trust
//! included. From the first login the server accepts, the proxy keeps in memory only what
//! pooled logins need (the SCRAM keys, the md5 hash, or the password for a server that
//! asks for it in clear) and checks later logins of that user against it.
//!
//! A cleartext password is asked for only where it cannot be overheard (TLS, loopback,
//! Unix socket). Other clients get SCRAM-SHA-256 (or md5, when that is what the server
//! uses) against what was kept, which needs one earlier login of the user over a secure
//! connection. A pooled login the server refuses (the password changed) drops what was
//! kept, so the next client login is checked by the server again.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::client::{ask_cleartext, md5_exchange, scram_exchange};
use super::md5::md5_stored;
use super::scram::ScramVerifier;
use super::{AuthError, Authenticator, LoginCtx, Secret};
use crate::pool::login::{self, LoginMethod};
use crate::pool::{ServerAuth, ServerError, ServerTarget};

/// What is kept for one user after the server accepted a login.
#[derive(Clone)]
pub(super) enum Kept {
    /// The server let the user in without a password.
    Trust,
    /// The server asks for the password in clear, so only the password itself will do.
    Password(String),
    /// The server uses md5: its hash of the password.
    Md5(String),
    /// The server uses SCRAM-SHA-256: the keys derived with its salt and iteration count.
    Scram {
        client_key: [u8; 32],
        verifier: ScramVerifier,
    },
}

impl Kept {
    /// What the server's accepted login says to keep for `password`.
    fn from_login(method: &LoginMethod, user: &str, password: String) -> Kept {
        match method {
            LoginMethod::Trust => Kept::Trust,
            LoginMethod::Cleartext => Kept::Password(password),
            LoginMethod::Md5 => Kept::Md5(md5_stored(user, &password)),
            LoginMethod::Scram { salt, iterations } => {
                let (verifier, client_key) =
                    ScramVerifier::keys_from_password(&password, salt, *iterations);
                Kept::Scram {
                    client_key,
                    verifier,
                }
            }
        }
    }

    fn server_auth(&self) -> ServerAuth {
        match self {
            Kept::Trust => ServerAuth::None,
            Kept::Password(p) => ServerAuth::Password(p.clone()),
            Kept::Md5(h) => ServerAuth::Md5Hash(h.clone()),
            Kept::Scram {
                client_key,
                verifier,
            } => ServerAuth::ScramKeys {
                client_key: *client_key,
                verifier: verifier.clone(),
            },
        }
    }

    /// True when a cleartext `password` is the one this was derived from.
    fn matches(&self, user: &str, password: &str) -> bool {
        match self {
            Kept::Trust => true,
            Kept::Password(p) => same(p, password),
            Kept::Md5(h) => same(h, &md5_stored(user, password)),
            Kept::Scram { verifier, .. } => verifier.matches_password(password),
        }
    }
}

/// Compares without an early exit, so the time taken says nothing about how much of a
/// guess was right (the length aside).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

type Key = (String, u16, String);

fn key(ctx: &LoginCtx<'_>) -> Key {
    (
        ctx.settings.host.clone(),
        ctx.settings.port,
        ctx.user.to_string(),
    )
}

/// Drops what was kept for the user of `ctx` (a pooled login with it was refused).
pub(super) fn forget(auth: &Authenticator, ctx: &LoginCtx<'_>) {
    if auth.kept.remove(&key(ctx)).is_some() {
        tracing::info!(
            user = ctx.user,
            "pass-through: the server refused what was kept; the next login goes to the server"
        );
    }
}

/// Checks the client through the server (first login) or against what was kept.
pub(super) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    ctx: &LoginCtx<'_>,
) -> Result<ServerAuth, AuthError> {
    let key = key(ctx);
    let kept = auth.kept.get(&key).map(|k| k.clone());
    match kept {
        Some(kept) => check_kept(stream, auth, ctx, key, kept).await,
        None => ask_server(stream, auth, ctx, key).await,
    }
}

/// A later login: checked against what the server's last accepted login left.
async fn check_kept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    ctx: &LoginCtx<'_>,
    key: Key,
    kept: Kept,
) -> Result<ServerAuth, AuthError> {
    let user = ctx.user;
    let stale = "wrong password (checked against the last login the server accepted)";
    match kept {
        Kept::Trust => Ok(ServerAuth::None),
        _ if ctx.secure => {
            let password = ask_cleartext(stream).await?;
            if kept.matches(user, &password) {
                return Ok(kept.server_auth());
            }
            // The password may have changed on the server: let the server decide.
            login_with_password(auth, ctx, key, password).await
        }
        Kept::Md5(hash) => md5_exchange(stream, user, Some(&Secret::Md5(hash)), stale).await,
        Kept::Password(p) => {
            scram_exchange(stream, auth, user, Some(&Secret::Plain(p)), stale).await
        }
        Kept::Scram { verifier, .. } => {
            let secret = Secret::Scram(verifier);
            scram_exchange(stream, auth, user, Some(&secret), stale).await
        }
    }
}

/// A first login: the server says whether the user needs a password at all.
async fn ask_server<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Authenticator,
    ctx: &LoginCtx<'_>,
    key: Key,
) -> Result<ServerAuth, AuthError> {
    match server_login(ctx, &ServerAuth::None).await {
        Ok(_) => {
            tracing::info!(
                user = ctx.user,
                "pass-through: the server lets this user in without a password"
            );
            auth.kept.insert(key, Kept::Trust);
            Ok(ServerAuth::None)
        }
        Err(ServerError::NoSecret { .. }) if ctx.secure => {
            let password = ask_cleartext(stream).await?;
            login_with_password(auth, ctx, key, password).await
        }
        Err(ServerError::NoSecret { method, .. }) => Err(AuthError::NeedsSecureLogin {
            user: ctx.user.to_string(),
            method,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Logs in to the server with the client's password; on success keeps what pooled
/// logins need and forgets the rest.
async fn login_with_password(
    auth: &Authenticator,
    ctx: &LoginCtx<'_>,
    key: Key,
    password: String,
) -> Result<ServerAuth, AuthError> {
    let conn = server_login(ctx, &ServerAuth::Password(password.clone())).await?;
    let kept = Kept::from_login(&conn.login_method, ctx.user, password);
    let server_auth = kept.server_auth();
    auth.kept.insert(key, kept);
    Ok(server_auth)
}

/// One server login as the client's user, closed right after: the proxy's pools open
/// their own connections with what was kept.
async fn server_login(
    ctx: &LoginCtx<'_>,
    with: &ServerAuth,
) -> Result<Box<crate::pool::ServerConn>, ServerError> {
    let target = ServerTarget {
        host: ctx.settings.host.clone(),
        port: ctx.settings.port,
        dbname: ctx.settings.server_dbname.clone(),
        user: ctx.user.to_string(),
    };
    let limit = ctx.config.server_connect_timeout;
    let open_count = Arc::new(AtomicUsize::new(0));
    let mut conn = login::open(&target, with, ctx.server_tls, limit, open_count).await?;
    conn.terminate();
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_what_the_server_method_needs() {
        let scram = LoginMethod::Scram {
            salt: b"0123456789abcdef".to_vec(),
            iterations: 4096,
        };
        let kept = Kept::from_login(&scram, "app", "pw".into());
        let Kept::Scram { verifier, .. } = &kept else {
            panic!("a SCRAM server leaves SCRAM keys")
        };
        // The same keys the server derives for its verifier from this salt.
        let server = ScramVerifier::from_password_with_salt("pw", b"0123456789abcdef", 4096);
        assert!(*verifier == server);
        assert!(kept.matches("app", "pw") && !kept.matches("app", "pW"));
        assert!(matches!(kept.server_auth(), ServerAuth::ScramKeys { .. }));

        let md5 = Kept::from_login(&LoginMethod::Md5, "app", "pw".into());
        assert!(matches!(&md5, Kept::Md5(h) if *h == md5_stored("app", "pw")));
        assert!(md5.matches("app", "pw") && !md5.matches("app", "px"));
        let clear = Kept::from_login(&LoginMethod::Cleartext, "app", "pw".into());
        assert!(matches!(clear.server_auth(), ServerAuth::Password(p) if p == "pw"));
        assert!(matches!(
            Kept::from_login(&LoginMethod::Trust, "app", String::new()).server_auth(),
            ServerAuth::None
        ));
    }
}
