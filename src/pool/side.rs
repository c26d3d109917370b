//! Small pools of the proxy's own connections to a server (for `auth_query` and EXPLAIN
//! captures): never a client's server, never in the client pools.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};

/// Where a side pool connects, and as whom.
pub struct SideTarget<'a> {
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
    pub password: Option<&'a str>,
    /// Shown in `pg_stat_activity`, so an operator knows whose connection it is.
    pub application_name: &'static str,
    pub connect_timeout: Duration,
    /// `Verified` when a connection may be left in a bad state (a capture that timed
    /// out); `Fast` otherwise.
    pub recycling: RecyclingMethod,
}

/// A pool of at most two connections; a checkout waits at most 5 s.
pub fn side_pool(target: SideTarget<'_>) -> deadpool_postgres::Pool {
    let mut pg = tokio_postgres::Config::new();
    pg.host(target.host)
        .port(target.port)
        .dbname(target.dbname)
        .user(target.user)
        .application_name(target.application_name)
        .connect_timeout(target.connect_timeout);
    if let Some(p) = target.password {
        pg.password(p);
    }
    let recycling_method = match target.recycling {
        RecyclingMethod::Fast => RecyclingMethod::Fast,
        _ => RecyclingMethod::Verified,
    };
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig { recycling_method },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(2)
        .wait_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .unwrap_or_else(|e| unreachable!("pool with a runtime and timeouts builds: {e}"))
}
