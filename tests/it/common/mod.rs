//! Shared test setup: an in-process proxy on port 0 in front of the real PostgreSQL from
//! `PGSIDECAR_TEST_DATABASE_URL`, clients for it, and throwaway clusters for tests that
//! need a differently configured server.

#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod raw;

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use pgsidecar::config::{AuthType, Config, PoolMode};
use pgsidecar::{App, ConfigSource};
use tokio_postgres::{Client, NoTls};

/// The server every test talks to (trust auth, user postgres).
pub fn database_url() -> String {
    std::env::var("PGSIDECAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Logs go to the test output when RUST_LOG is set.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("RUST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// A configuration for tests: port 0, trust auth, the test server, small pools.
pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        upstream: database_url(),
        auth_type: AuthType::Trust,
        pool_mode: PoolMode::Transaction,
        pool_size: 4,
        // The store writes a schema; tests that want one give it a throwaway database.
        store: false,
        ..Config::default()
    }
}

/// A proxy running inside the test's runtime.
pub struct Proxy {
    pub app: App,
    pub addr: SocketAddr,
}

impl Proxy {
    pub async fn start(config: Config) -> Proxy {
        init_logging();
        let app = App::start(config, ConfigSource::default())
            .await
            .expect("proxy starts");
        let addr = app.local_addr();
        Proxy { app, addr }
    }

    /// Starts with the test defaults, adjusted by `f`.
    pub async fn with(f: impl FnOnce(&mut Config)) -> Proxy {
        let mut config = test_config();
        f(&mut config);
        Proxy::start(config).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A libpq-style URL to the proxy.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port())
    }

    /// A tokio-postgres client through the proxy as postgres/postgres.
    pub async fn client(&self) -> Client {
        connect(&self.url("postgres", "postgres")).await
    }

    pub async fn stop(self) {
        self.app.force_shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.app.wait()).await;
    }
}

/// Connects and drives the connection on a background task.
pub async fn connect(url: &str) -> Client {
    try_connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

pub async fn try_connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A client straight to the test server, bypassing the proxy.
pub async fn direct() -> Client {
    connect(&database_url()).await
}

/// The SQLSTATE code of a tokio-postgres error, if the server (or proxy) sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// A unique name for tables and roles, so tests can run in parallel.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
