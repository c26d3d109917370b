//! Login: protocol negotiation, client authentication, and the greeting
//! (ParameterStatus values exactly as the server reports them, BackendKeyData,
//! ReadyForQuery).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::tls::ClientStream;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::clients::{ClientHandle, ClientIdentity};
use super::params::ClientParams;
use super::serve::Serve;
use super::{report, OpeningPlace, SessionError};
use crate::app::Shared;
use crate::config::PoolMode;
use crate::pool::{Pool, PooledServer, ServerError};
use crate::protocol::messages;
use crate::protocol::startup::StartupMessage;

/// A logged-in client, ready for requests.
pub struct Greeted {
    pub pool: Arc<Pool>,
    pub params: ClientParams,
    pub client: ClientHandle,
    /// Session mode: the client's own server from now on.
    pub server: Option<PooledServer>,
}

/// Logs the client in (within `client_login_timeout`) and serves it until it leaves.
pub async fn login_and_serve(
    shared: &Arc<Shared>,
    mut stream: ClientStream,
    peer: SocketAddr,
    startup: StartupMessage,
    place: OpeningPlace,
) {
    let limit = shared.config().client_login_timeout;
    let logging_in = tokio::time::timeout(limit, login(shared, &mut stream, peer, &startup));
    let outcome = tokio::select! {
        outcome = logging_in => outcome,
        // Pushed out by newer connections while still logging in.
        _ = place.shed() => Ok(Err(SessionError::TooManyOpening)),
    };
    drop(place);
    let greeted = match outcome {
        Ok(Ok(greeted)) => greeted,
        Ok(Err(e)) => return report(&mut stream, peer, e).await,
        Err(_) => return report(&mut stream, peer, SessionError::LoginTimeout).await,
    };
    tracing::debug!(%peer, pool = %greeted.pool.key, "client logged in");
    Serve::new(shared.clone(), stream, greeted, peer)
        .run()
        .await;
}

async fn login(
    shared: &Shared,
    stream: &mut ClientStream,
    peer: SocketAddr,
    startup: &StartupMessage,
) -> Result<Greeted, SessionError> {
    let config = shared.config();
    // Logged-in clients only: connections still opening have a limit of their own.
    if shared.clients_registry.len() >= config.max_client_conn {
        return Err(SessionError::TooManyClients(config.max_client_conn));
    }
    let user = startup
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or(SessionError::NoUser)?;
    let database = startup
        .get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(user);
    let (mut params, unsupported) = ClientParams::from_startup(&startup.params);
    if startup.minor > 0 || !unsupported.is_empty() {
        let mut out = BytesMut::new();
        messages::negotiate_protocol_version(&mut out, unsupported);
        stream.write_all(&out).await?;
    }
    let upstream = shared.upstream();
    let settings = config.pool_settings(&upstream, database);
    let key = crate::pool::PoolKey {
        database: database.to_string(),
        user: user.to_string(),
    };
    let stale = shared
        .pools
        .get(&key)
        .is_some_and(|p| p.take_auth_rejected());
    let tls = shared.tls();
    let ctx = crate::auth::LoginCtx {
        config: &config,
        upstream: &upstream,
        settings: &settings,
        user,
        secure: stream.is_tls() || peer.ip().is_loopback(),
        server_tls: &tls.server,
        stale,
    };
    let server_auth = crate::auth::authenticate(stream, &shared.auth, &ctx).await?;
    let pool = shared.pool(database, user);
    pool.offer_auth(server_auth);

    let (server, welcome) = welcome(&pool, &mut params).await?;
    let identity = ClientIdentity {
        database: database.to_string(),
        user: user.to_string(),
        application_name: params.get("application_name").unwrap_or("").to_string(),
        peer,
    };
    let client = shared
        .clients_registry
        .register(server.as_ref().map(|s| s.pid), identity);
    if let Some(s) = &server {
        client.set_server(Some(s.cancel_key.clone()));
    }
    let mut out = BytesMut::new();
    for (name, value) in welcome.iter() {
        messages::parameter_status(&mut out, name, value);
    }
    messages::backend_key_data(&mut out, client.pid(), client.secret());
    messages::ready_for_query(&mut out, b'I');
    stream.write_all(&out).await?;
    Ok(Greeted {
        pool,
        params,
        client,
        server,
    })
}

/// The parameters to greet the client with, and in session mode its server. A
/// transaction-mode client whose settings the pool's cached greeting already answers
/// needs no server at all; otherwise a server is borrowed and set up as the client asked.
async fn welcome(
    pool: &Arc<Pool>,
    params: &mut ClientParams,
) -> Result<(Option<PooledServer>, Vec<(String, String)>), SessionError> {
    if pool.mode() == PoolMode::Transaction {
        if let Some(cached) = pool.welcome() {
            if let Some(greeting) = cached_greeting(&cached, params) {
                return Ok((None, greeting));
            }
        }
    }
    let mut server = pool.checkout().await?;
    sync_server(&mut server, params, pool.params().connect_timeout).await?;
    let greeting = server
        .reported
        .values()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let keep = pool.mode() == PoolMode::Session;
    Ok((keep.then_some(server), greeting))
}

/// The greeting built from a fresh server's parameters, when every reported setting the
/// client asked for is already what the server reports (application_name aside, which the
/// server echoes verbatim when short and plain).
fn cached_greeting(
    cached: &[(String, String)],
    params: &ClientParams,
) -> Option<Vec<(String, String)>> {
    let mut greeting = cached.to_vec();
    for (name, value) in params.iter() {
        let slot = greeting
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        match slot {
            Some((_, current)) if name == "application_name" => {
                let plain = value.len() < 64 && value.bytes().all(|b| (32..127).contains(&b));
                if !plain {
                    return None;
                }
                *current = value.to_string();
            }
            Some((_, current)) if current != value => return None,
            _ => {}
        }
    }
    Some(greeting)
}

/// Makes a server's session settings match the client's. Runs SQL only when they differ.
pub async fn sync_server(
    server: &mut PooledServer,
    params: &mut ClientParams,
    limit: std::time::Duration,
) -> Result<(), ServerError> {
    if server.verified_for == Some(params.signature()) {
        return Ok(());
    }
    if let Some(sql) = params.sync_sql(server) {
        server.simple_query(&sql, limit).await?;
        params.after_sync(server);
    }
    server.verified_for = Some(params.signature());
    Ok(())
}
