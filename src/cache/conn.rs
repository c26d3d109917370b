//! Where the cache's own connections go (analysis, listener, install): the server of
//! the database as clients name it, as the proxy's own upstream user. Never a client's
//! server, never in a client pool.

use std::time::Duration;

use crate::state::Running;

/// Shown in `pg_stat_activity`, so an operator knows whose connection it is.
pub const APPLICATION_NAME: &str = "pgsidecar cache";

/// A connection configuration for `database` (the name clients use).
pub fn pg_config(shared: &Running, database: &str) -> tokio_postgres::Config {
    let config = shared.config();
    let upstream = shared.upstream();
    let settings = config.pool_settings(&upstream, database);
    target(
        &settings.host,
        settings.port,
        &settings.server_dbname,
        &upstream.user,
        upstream.password.as_deref(),
        config.server_connect_timeout,
    )
}

/// A connection configuration from its parts.
pub fn target(
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
    password: Option<&str>,
    connect_timeout: Duration,
) -> tokio_postgres::Config {
    let mut pg = tokio_postgres::Config::new();
    pg.host(host)
        .port(port)
        .dbname(dbname)
        .user(user)
        .application_name(APPLICATION_NAME)
        .connect_timeout(connect_timeout);
    if let Some(p) = password {
        pg.password(p);
    }
    pg
}

/// `host:port/dbname`, for messages (never the password).
pub fn describe(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", pg.get_dbname().unwrap_or("?"))
}
