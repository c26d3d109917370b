//! The configuration: every option with its documented default, as read from `proxy.toml`.
//!
//! `proxy.toml` at the repository root is the annotated sample; keep the two in step.
//! Loading, command-line overrides and validation live in [`load`].

mod live;
mod load;
mod redact;
mod tls;
mod upstream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use live::{parse_upstream, Live};
pub use load::{ConfigError, Overrides};
pub use redact::{redact_postgres_url, redact_webhook_url};
pub use tls::{ClientTlsMode, ServerTlsMode};
pub use upstream::{is_socket_dir, Upstream};

/// The whole configuration. Unknown keys are rejected so that a typo never silently falls
/// back to a default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address clients connect to (`ADDR:PORT`).
    pub listen: String,
    /// Also accept clients on a Unix socket in this directory, named `.s.PGSQL.<port>`
    /// after the `listen` port, as libpq expects (`host=<dir>`). Unset: TCP only.
    pub listen_unix_dir: Option<String>,
    /// Address of the admin HTTP server (metrics, API).
    pub admin_listen: String,
    /// The PostgreSQL server, as a URL: `postgres://user[:password]@host[:port]/dbname`,
    /// or with a socket directory: `postgres://user@/dbname?host=/var/run/postgresql`.
    /// Its host and port are where every pool connects; its user and password are the
    /// proxy's own identity (for `auth_query`) and the fallback server password for that user.
    pub upstream: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// How clients authenticate to the proxy: `auto` (the default: `passthrough` when no
    /// `[[users]]` and no `auth_query` are set, else `scram-sha-256`), `scram-sha-256`,
    /// `md5`, `trust` or `passthrough` (the server checks the client's own credentials).
    pub auth_type: AuthType,
    /// Query that fetches `(user name, password or verifier)` for a user not listed in
    /// `[[users]]`; `$1` is the user name. Unset means only `[[users]]` can log in.
    pub auth_query: Option<String>,
    /// The user `auth_query` runs as; defaults to the upstream URL's user.
    pub auth_user: Option<String>,
    /// `transaction` (a server per transaction) or `session` (a server per client).
    pub pool_mode: PoolMode,
    /// Maximum server connections per (database, user) pool.
    pub pool_size: usize,
    /// Server connections kept open per pool even when idle.
    pub min_pool_size: usize,
    /// Maximum client connections to the proxy.
    pub max_client_conn: usize,
    /// How long a client waits for a free server connection before it gets SQLSTATE 53300.
    #[serde(with = "humantime_serde")]
    pub checkout_timeout: Duration,
    /// How long opening a server connection (TCP plus authentication) may take.
    #[serde(with = "humantime_serde")]
    pub server_connect_timeout: Duration,
    /// Idle server connections are closed after this long.
    #[serde(with = "humantime_serde")]
    pub server_idle_timeout: Duration,
    /// Every server connection is closed once idle after this long.
    #[serde(with = "humantime_serde")]
    pub server_lifetime: Duration,
    /// A server idle for longer than this is checked with a round trip before reuse.
    #[serde(with = "humantime_serde")]
    pub server_check_delay: Duration,
    /// Run on a session-mode server before another client gets it.
    pub server_reset_query: String,
    /// A client must finish startup and authentication within this time.
    #[serde(with = "humantime_serde")]
    pub client_login_timeout: Duration,
    /// Largest protocol message accepted from a client, in bytes.
    pub max_message_size: usize,
    /// Bytes all clients together may hold in buffers for messages not yet forwarded
    /// (a big Query must arrive whole); past it a client gets SQLSTATE 53200.
    pub client_buffer_budget: usize,
    /// TLS towards clients: `disable`, `allow` or `require`.
    pub client_tls: ClientTlsMode,
    /// PEM certificate chain clients are shown (required unless `client_tls` is disable).
    pub client_tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub client_tls_key_file: Option<PathBuf>,
    /// TLS towards servers: `disable`, `prefer`, `require` or `verify-full`.
    pub server_tls: ServerTlsMode,
    /// PEM CA certificates a server's chain must lead to (`verify-full`).
    pub server_tls_ca_file: Option<PathBuf>,
    /// How long SIGTERM waits for open transactions before closing every client.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Threads serving clients: 1 runs everything on one thread (like PgBouncer, cheapest
    /// per transaction on a small machine); 0 means one per CPU core.
    pub worker_threads: usize,
    /// Transaction mode: named prepared statements are renamed per client and prepared
    /// again on whichever server the client lands on; each server keeps at most this
    /// many (least recently used closed first). 0 passes them through unchanged.
    pub max_prepared_statements: usize,
    /// Index advisor and workload insights (`[advisor]`, see [`crate::advisor::config`]).
    pub advisor: crate::advisor::AdvisorConfig,
    /// Measure every statement (fingerprints, latency percentiles). Off: pure pooling.
    pub stats: bool,
    /// Query shapes tracked per (database, user); the least valuable are evicted.
    pub max_fingerprints: usize,
    /// Per-fingerprint series in /metrics for the top N by total time; the rest are
    /// summed under `fingerprint="other"`.
    pub metrics_top_queries: usize,
    /// Bearer token required by every `/api` call when set.
    pub admin_token: Option<String>,
    /// Also require the token for `/metrics` (probes stay open).
    pub protect_metrics: bool,
    /// Users allowed into the SQL admin console (database `pgsidecar` or `pgbouncer`).
    pub admin_users: Vec<String>,
    /// A statement slower than this is a slow event (level warning), in milliseconds.
    pub slow_warning_ms: u64,
    /// A statement slower than this is critical and gets an EXPLAIN capture.
    pub slow_critical_ms: u64,
    /// Slow executions of one fingerprint in a row that fire an alert.
    pub alert_consecutive: u32,
    /// After an alert, the same fingerprint stays quiet this long (suppressed, counted).
    #[serde(with = "humantime_serde")]
    pub alert_cooldown: Duration,
    /// Alerts are also POSTed here as JSON (Slack- and Alertmanager-friendly).
    pub alert_webhook_url: Option<String>,
    /// At most one EXPLAIN capture per fingerprint this often.
    #[serde(with = "humantime_serde")]
    pub explain_interval: Duration,
    /// `statement_timeout` of an EXPLAIN capture.
    #[serde(with = "humantime_serde")]
    pub explain_statement_timeout: Duration,
    /// `lock_timeout` of an EXPLAIN capture.
    #[serde(with = "humantime_serde")]
    pub explain_lock_timeout: Duration,
    /// Keep the bound parameter values with captured plans (off: literals are private).
    pub explain_store_params: bool,
    /// Capture a plan when an alert fires (within `explain_interval`, fleet-wide).
    pub explain_on_alert: bool,
    /// Warning-level executions get a capture at most this often per fingerprint
    /// (fleet-wide); `0s` captures only critical executions and alerts.
    #[serde(with = "humantime_serde")]
    pub explain_warning_interval: Duration,
    /// Capture again when a fingerprint's 5-minute p50 moved by more than this factor
    /// against the 5-minute p50 when its last plan was captured; 0 switches it off.
    pub explain_latency_factor: f64,
    /// The `slow statement` log line is written for the first slow execution of a
    /// fingerprint per interval; the rest are counted into the next line.
    #[serde(with = "humantime_serde")]
    pub slow_log_interval: Duration,
    /// Keep slow events, plans, alerts, statistics history and jobs in PostgreSQL
    /// (schema `pgsidecar`). Off, or unreachable: memory only.
    pub store: bool,
    /// Where the store lives; default: the upstream URL.
    pub store_url: Option<String>,
    /// Days of history the store keeps.
    pub retention_days: u32,
    /// How often the last minute's statistics are written to the store (one batch).
    #[serde(with = "humantime_serde")]
    pub stats_flush_interval: Duration,
    /// Thresholds for single fingerprints (16 hex digits).
    pub slow_fingerprints: BTreeMap<String, SlowOverride>,
    /// Users that may log in, with their passwords.
    pub users: Vec<UserConfig>,
    /// Per-database overrides, keyed by the database name clients use.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// The SELECT result cache (`[cache]`, off by default; see `crate::cache`).
    pub cache: crate::cache::config::CacheConfig,
}

/// A user known to the proxy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// A plain password, an `md5…` hash or a `SCRAM-SHA-256$…` verifier. With a plain
    /// password the proxy can answer any server challenge; with a verifier it logs in to the
    /// server with the keys the client proved (SCRAM pass-through, as PgBouncer does).
    pub password: Option<String>,
}

/// Per-database settings; anything unset follows the global value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The database's name on the server, when it differs from the name clients use.
    pub dbname: Option<String>,
    /// A different server host for this database.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub pool_mode: Option<PoolMode>,
    pub pool_size: Option<usize>,
    pub min_pool_size: Option<usize>,
    pub slow_warning_ms: Option<u64>,
    pub slow_critical_ms: Option<u64>,
}

/// Slow-statement thresholds of one fingerprint; unset ones follow the database's.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlowOverride {
    pub slow_warning_ms: Option<u64>,
    pub slow_critical_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Session,
    Transaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
pub enum AuthType {
    /// `passthrough` when no `[[users]]` and no `auth_query` are configured, else
    /// `scram-sha-256`.
    #[serde(rename = "auto")]
    #[value(name = "auto")]
    Auto,
    #[serde(rename = "scram-sha-256")]
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    #[value(name = "md5")]
    Md5,
    #[serde(rename = "trust")]
    #[value(name = "trust")]
    Trust,
    /// The server checks the credentials the client presents (see `auth::passthrough`).
    #[serde(rename = "passthrough")]
    #[value(name = "passthrough")]
    Passthrough,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:6432".into(),
            listen_unix_dir: None,
            admin_listen: "127.0.0.1:9930".into(),
            upstream: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            log_format: LogFormat::Text,
            auth_type: AuthType::Auto,
            auth_query: None,
            auth_user: None,
            pool_mode: PoolMode::Transaction,
            pool_size: 20,
            min_pool_size: 0,
            max_client_conn: 10_000,
            checkout_timeout: Duration::from_secs(5),
            server_connect_timeout: Duration::from_secs(5),
            server_idle_timeout: Duration::from_secs(600),
            server_lifetime: Duration::from_secs(3600),
            server_check_delay: Duration::from_secs(30),
            server_reset_query: "DISCARD ALL".into(),
            client_login_timeout: Duration::from_secs(15),
            max_message_size: 64 * 1024 * 1024,
            client_buffer_budget: 256 * 1024 * 1024,
            client_tls: ClientTlsMode::Disable,
            client_tls_cert_file: None,
            client_tls_key_file: None,
            server_tls: ServerTlsMode::Disable,
            server_tls_ca_file: None,
            shutdown_timeout: Duration::from_secs(30),
            worker_threads: 1,
            max_prepared_statements: 500,
            advisor: crate::advisor::AdvisorConfig::default(),
            stats: true,
            max_fingerprints: 5000,
            metrics_top_queries: 50,
            admin_token: None,
            protect_metrics: false,
            admin_users: Vec::new(),
            slow_warning_ms: 500,
            slow_critical_ms: 1000,
            alert_consecutive: 3,
            alert_cooldown: Duration::from_secs(600),
            alert_webhook_url: None,
            explain_interval: Duration::from_secs(600),
            explain_statement_timeout: Duration::from_secs(30),
            explain_lock_timeout: Duration::from_secs(5),
            explain_store_params: false,
            explain_on_alert: true,
            explain_warning_interval: Duration::from_secs(3600),
            explain_latency_factor: 2.0,
            slow_log_interval: Duration::from_secs(60),
            store: true,
            store_url: None,
            retention_days: 30,
            stats_flush_interval: Duration::from_secs(60),
            slow_fingerprints: BTreeMap::new(),
            users: Vec::new(),
            databases: BTreeMap::new(),
            cache: Default::default(),
        }
    }
}

/// The settings one pool runs with, after per-database overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub mode: PoolMode,
    pub size: usize,
    pub min_size: usize,
    /// The database name on the server.
    pub server_dbname: String,
    pub host: String,
    pub port: u16,
}

impl Config {
    /// The effective pool settings for a database as clients name it.
    pub fn pool_settings(&self, upstream: &Upstream, database: &str) -> PoolSettings {
        let db = self.databases.get(database).cloned().unwrap_or_default();
        PoolSettings {
            mode: db.pool_mode.unwrap_or(self.pool_mode),
            size: db.pool_size.unwrap_or(self.pool_size),
            min_size: db.min_pool_size.unwrap_or(self.min_pool_size),
            server_dbname: db.dbname.unwrap_or_else(|| database.to_string()),
            host: db.host.unwrap_or_else(|| upstream.host.clone()),
            port: db.port.unwrap_or(upstream.port),
        }
    }

    /// The authentication clients get: `auto` resolved.
    pub fn effective_auth_type(&self) -> AuthType {
        match self.auth_type {
            AuthType::Auto if self.users.is_empty() && self.auth_query.is_none() => {
                AuthType::Passthrough
            }
            AuthType::Auto => AuthType::ScramSha256,
            other => other,
        }
    }

    /// The configured user entry, if any.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The configuration rendered as TOML with passwords masked, for `check-config`.
    pub fn to_display_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.admin_token.is_some() {
            shown.admin_token = Some("********".into());
        }
        for user in &mut shown.users {
            if user.password.is_some() {
                user.password = Some("********".into());
            }
        }
        if let Ok(mut url) = Upstream::parse(&shown.upstream) {
            if url.password.is_some() {
                url.password = Some("********".into());
                shown.upstream = url.to_url();
            }
        }
        shown.store_url = shown.store_url.as_deref().map(redact_postgres_url);
        shown.alert_webhook_url = shown.alert_webhook_url.as_deref().map(redact_webhook_url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}
