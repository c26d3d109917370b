//! The SQL admin console, PgBouncer's convention: a client that connects to the
//! database `pgsidecar` (or `pgbouncer`) is authenticated like any other, must be listed
//! in `admin_users` (else FATAL 42501), and then talks to the proxy itself in the simple
//! query protocol: `SHOW POOLS|STATS|STATS_TOTALS|CLIENTS|SERVERS|DATABASES|LISTS|CONFIG|
//! VERSION|QUERIES|HELP`, `RELOAD`, `PAUSE [db]`, `RESUME [db]`, `SHUTDOWN`. Column names
//! follow PgBouncer's, so pgbouncer_exporter and habits work.
//!
//! Layout: this file logs the client in and greets it; `session` reads its messages and
//! runs commands; `command` parses them; `pools` (pools, clients, servers, databases),
//! `stats` (per-database totals, top queries) and `info` (config, lists, version, help) build
//! the answers; `control` pauses, resumes, reloads and shuts down; `wire` encodes.

mod command;
mod control;
mod info;
mod pools;
mod session;
mod slow;
mod stats;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::tls::ClientStream;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::app::Shared;
use crate::protocol::messages::{self, Severity};
use crate::protocol::startup::StartupMessage;
use crate::session::{report, ClientIdentity, SessionError};

pub use command::{parse, split, Command, Show};

/// Database names that lead to the console instead of a pool.
pub const DATABASES: [&str; 2] = ["pgsidecar", "pgbouncer"];

/// What `server_version` the console reports: PostgreSQL-like, so that drivers parse it.
pub const SERVER_VERSION: &str = concat!("15.0 (pgsidecar ", env!("CARGO_PKG_VERSION"), ")");

/// A `SHOW` answer as column names and text rows (NULL as `None`).
pub type TextTable = (Vec<&'static str>, Vec<Vec<Option<String>>>);

/// `SHOW POOLS`, `SHOW CLIENTS` or `SHOW SERVERS` (by that lower-case name) as column
/// names and text rows, for the web console; `None` for any other name.
pub fn show_table(shared: &Shared, what: &str) -> Option<TextTable> {
    let rs = match what {
        "pools" => pools::show_pools(shared),
        "clients" => pools::show_clients(shared),
        "servers" => pools::show_servers(shared),
        _ => return None,
    };
    Some((rs.column_names(), rs.text_rows()))
}

/// True when the startup packet asks for the console (the database defaults to the user
/// name, as in PostgreSQL).
pub fn wants_console(startup: &StartupMessage) -> bool {
    database_of(startup).is_some_and(|d| DATABASES.contains(&d))
}

fn database_of(startup: &StartupMessage) -> Option<&str> {
    let database = startup.get("database").filter(|d| !d.is_empty());
    database.or(startup.get("user"))
}

/// How sessions reach the console: chosen from the startup packet, before any login.
pub const ENTRY: crate::session::ConsoleEntry = crate::session::ConsoleEntry {
    wants: wants_console,
    serve: |shared, stream, peer, startup| Box::pin(login_and_serve(shared, stream, peer, startup)),
};

/// Logs a console client in (within `client_login_timeout`) and serves it until it leaves.
pub async fn login_and_serve(
    shared: Arc<Shared>,
    mut stream: ClientStream,
    peer: SocketAddr,
    startup: StartupMessage,
) {
    let limit = shared.config().client_login_timeout;
    let logged_in = tokio::time::timeout(limit, login(&shared, &mut stream, peer, &startup)).await;
    let client = match logged_in {
        Ok(Ok(Some(client))) => client,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return report(&mut stream, peer, e).await,
        Err(_) => return report(&mut stream, peer, SessionError::LoginTimeout).await,
    };
    tracing::info!(%peer, user = %client_user(&startup), "admin console login");
    session::Console::new(shared, stream, peer, client)
        .run()
        .await;
}

/// A console client's entry in the client registry (it lists the console's clients
/// too, as PgBouncer does); the entry is removed when this is dropped.
pub(crate) struct Registration {
    _entry: Box<dyn Send + Sync>,
}

fn client_user(startup: &StartupMessage) -> &str {
    startup.get("user").unwrap_or("")
}

/// Authenticates, checks `admin_users`, registers the client and greets it. `None` when
/// the client was refused (and told so).
async fn login(
    shared: &Shared,
    stream: &mut ClientStream,
    peer: SocketAddr,
    startup: &StartupMessage,
) -> Result<Option<Registration>, SessionError> {
    let config = shared.config();
    if shared.clients.load(Ordering::Relaxed) > config.max_client_conn {
        return Err(SessionError::TooManyClients(config.max_client_conn));
    }
    let user = Some(client_user(startup))
        .filter(|u| !u.is_empty())
        .ok_or(SessionError::NoUser)?;
    // Startup options are the session's business; only the unsupported ones matter here.
    let (_, unsupported) = crate::session::ClientParams::from_startup(&startup.params);
    if startup.minor > 0 || !unsupported.is_empty() {
        let mut out = BytesMut::new();
        messages::negotiate_protocol_version(&mut out, unsupported);
        stream.write_all(&out).await?;
    }
    // The console has no server database; secrets (and auth_query) use the upstream's.
    let upstream = shared.upstream();
    let settings = config.pool_settings(&upstream, &upstream.dbname);
    let tls = shared.tls();
    let ctx = crate::auth::LoginCtx {
        config: &config,
        upstream: &upstream,
        settings: &settings,
        user,
        secure: stream.is_tls() || peer.ip().is_loopback(),
        server_tls: &tls.server,
        stale: false,
    };
    crate::auth::authenticate(stream, &shared.auth, &ctx).await?;
    if !config.admin_users.iter().any(|a| a == user) {
        tracing::info!(%peer, user, "admin console refused: not in admin_users");
        let mut out = BytesMut::new();
        let message = format!(
            "pgsidecar: permission denied for the admin console: user \"{user}\" is not in admin_users"
        );
        messages::error_response(&mut out, Severity::Fatal, "42501", &message);
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
        return Ok(None);
    }
    let application_name = startup.get("application_name").unwrap_or("");
    let identity = ClientIdentity {
        database: database_of(startup).unwrap_or(user).to_string(),
        user: user.to_string(),
        application_name: application_name.to_string(),
        peer,
    };
    let client = shared.clients_registry.register(None, identity);
    let mut out = BytesMut::new();
    for (name, value) in [
        ("server_version", SERVER_VERSION),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("TimeZone", "UTC"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("is_superuser", "on"),
        ("application_name", application_name),
    ] {
        messages::parameter_status(&mut out, name, value);
    }
    messages::backend_key_data(&mut out, client.pid(), client.secret());
    messages::ready_for_query(&mut out, b'I');
    stream.write_all(&out).await?;
    Ok(Some(Registration {
        _entry: Box::new(client),
    }))
}
