//! Who may log in, and with what proof: the secrets of `[[users]]` and `auth_query`, the
//! exchanges with clients (SCRAM-SHA-256, md5, cleartext, trust), pass-through logins
//! checked by the server itself, per-user failure limits, and what all that lets the
//! proxy prove to the server in turn.

mod client;
mod limit;
pub mod md5;
mod passthrough;
pub mod scram;

use dashmap::DashMap;
use deadpool_postgres::RecyclingMethod;
use rand::RngCore;

pub use client::authenticate;

use crate::config::{Config, PoolSettings, Upstream};
use crate::pool::side::{side_pool, SideTarget};
use crate::pool::{ServerAuth, ServerError};
use crate::protocol::ProtocolError;
use crate::tls::ServerTls;
use limit::FailureLimiter;
use passthrough::Kept;
use scram::ScramVerifier;

/// Failures while authenticating a client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong password, unknown user, or a secret that cannot serve the method: the client
    /// is told exactly what PostgreSQL would tell it; `reason` goes to the log only.
    #[error("password authentication failed for user \"{user}\"")]
    Failed { user: String, reason: String },
    /// Pass-through: the server refused the login (its ErrorResponse reaches the client
    /// as is), or could not be reached.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Pass-through over plain TCP from another host, before the proxy has anything to
    /// check a SCRAM login against.
    #[error(
        "pgsidecar: cannot check a password for user \"{user}\" yet: the server asks for \
         {method}, and a cleartext password is only asked for over TLS or from this host; \
         log in once that way, or connect with sslmode=require"
    )]
    NeedsSecureLogin { user: String, method: &'static str },
    #[error("pgsidecar: too many failed logins for user \"{user}\"; retry in {retry_secs} s")]
    RateLimited { user: String, retry_secs: u64 },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("client connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("pgsidecar: auth_query for user \"{user}\" failed: {reason}")]
    Query { user: String, reason: String },
}

impl AuthError {
    fn failed(user: &str, reason: impl Into<String>) -> AuthError {
        AuthError::Failed {
            user: user.to_string(),
            reason: reason.into(),
        }
    }

    /// Why the login was refused, for the log (the client gets PostgreSQL's wording).
    pub fn reason(&self) -> Option<String> {
        match self {
            AuthError::Failed { reason, .. } => Some(reason.clone()),
            AuthError::Server(ServerError::Rejected { fields, .. }) if fields.code == "28P01" => {
                Some(format!("server rejected the password: {}", fields.message))
            }
            AuthError::Server(ServerError::Rejected { fields, .. }) => {
                Some(format!("server refused the login: {fields}"))
            }
            _ => None,
        }
    }

    /// True for a wrong or refused credential, which counts towards the user's limit.
    fn is_credential_failure(&self) -> bool {
        match self {
            AuthError::Failed { .. } => true,
            AuthError::Server(e) => e.is_auth_rejection(),
            _ => false,
        }
    }
}

/// One client's login: who, over what, and the server behind it.
pub struct LoginCtx<'a> {
    pub config: &'a Config,
    pub upstream: &'a Upstream,
    pub settings: &'a PoolSettings,
    pub user: &'a str,
    /// TLS, loopback or a Unix socket: asking for a cleartext password exposes nothing.
    pub secure: bool,
    /// How pass-through logs in to the server.
    pub server_tls: &'a ServerTls,
    /// A pooled login of this user was refused since its last client login: what
    /// pass-through kept for the user is stale.
    pub stale: bool,
}

/// A user's stored secret.
#[derive(Clone)]
pub enum Secret {
    Plain(String),
    Md5(String),
    Scram(ScramVerifier),
}

impl Secret {
    /// Classifies a stored password the way PostgreSQL does.
    pub fn from_stored(stored: &str) -> Secret {
        if let Some(v) = ScramVerifier::parse(stored) {
            Secret::Scram(v)
        } else if stored.len() == 35 && stored.starts_with("md5") {
            Secret::Md5(stored.to_string())
        } else {
            Secret::Plain(stored.to_string())
        }
    }

    /// What this secret alone lets the proxy prove to the server.
    fn server_auth(&self) -> ServerAuth {
        match self {
            Secret::Plain(p) => ServerAuth::Password(p.clone()),
            Secret::Md5(h) => ServerAuth::Md5Hash(h.clone()),
            Secret::Scram(_) => ServerAuth::None,
        }
    }
}

/// Looks up secrets and keeps what is costly to recompute.
pub struct Authenticator {
    /// Key for mock SCRAM salts, so unknown users look like known ones.
    mock_key: [u8; 32],
    /// Verifiers derived from plaintext passwords (4096 PBKDF2 rounds are too slow to
    /// repeat per login), keyed by user and password.
    derived: DashMap<(String, String), ScramVerifier>,
    /// Side connections for `auth_query`, one small pool per server database.
    side_pools: DashMap<String, deadpool_postgres::Pool>,
    /// Pass-through: what pooled logins need, per (host, port, user), from the last
    /// login the server accepted. Memory only.
    kept: DashMap<(String, u16, String), Kept>,
    failures: FailureLimiter,
}

impl Default for Authenticator {
    fn default() -> Self {
        let mut mock_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut mock_key);
        Authenticator {
            mock_key,
            derived: DashMap::new(),
            side_pools: DashMap::new(),
            kept: DashMap::new(),
            failures: FailureLimiter::default(),
        }
    }
}

impl Authenticator {
    /// The secret for `user`: from `[[users]]`, else from `auth_query`. `None` for an
    /// unknown user.
    pub async fn lookup(
        &self,
        config: &Config,
        upstream: &Upstream,
        settings: &PoolSettings,
        user: &str,
    ) -> Result<Option<Secret>, AuthError> {
        if let Some(entry) = config.user(user) {
            return Ok(entry.password.as_deref().map(Secret::from_stored));
        }
        match &config.auth_query {
            Some(query) => {
                self.query_secret(config, upstream, settings, query, user)
                    .await
            }
            None => Ok(None),
        }
    }

    async fn query_secret(
        &self,
        config: &Config,
        upstream: &Upstream,
        settings: &PoolSettings,
        query: &str,
        user: &str,
    ) -> Result<Option<Secret>, AuthError> {
        let fail = |reason: String| AuthError::Query {
            user: user.to_string(),
            reason,
        };
        let pool = self.side_pool(config, upstream, settings);
        let limit = config.server_connect_timeout;
        let work = async {
            let client = pool.get().await.map_err(|e| fail(e.to_string()))?;
            client
                .query_opt(query, &[&user])
                .await
                .map_err(|e| fail(e.to_string()))
        };
        let row = tokio::time::timeout(limit, work)
            .await
            .map_err(|_| fail(format!("no answer within {} ms", limit.as_millis())))??;
        let Some(row) = row else { return Ok(None) };
        let stored: Option<String> = row.try_get(1).map_err(|e| fail(e.to_string()))?;
        Ok(stored.map(|s| Secret::from_stored(&s)))
    }

    fn side_pool(
        &self,
        config: &Config,
        upstream: &Upstream,
        settings: &PoolSettings,
    ) -> deadpool_postgres::Pool {
        if let Some(pool) = self.side_pools.get(&settings.server_dbname) {
            return pool.clone();
        }
        let pool = side_pool(SideTarget {
            host: &settings.host,
            port: settings.port,
            dbname: &settings.server_dbname,
            user: config.auth_user.as_deref().unwrap_or(&upstream.user),
            password: upstream.password.as_deref(),
            application_name: "pgsidecar auth_query",
            connect_timeout: config.server_connect_timeout,
            recycling: RecyclingMethod::Fast,
        });
        self.side_pools
            .insert(settings.server_dbname.clone(), pool.clone());
        pool
    }

    /// A SCRAM verifier for `secret`, derived once per plaintext password.
    fn verifier_for(&self, user: &str, secret: &Secret) -> Option<ScramVerifier> {
        match secret {
            Secret::Scram(v) => Some(v.clone()),
            Secret::Plain(p) => {
                let key = (user.to_string(), p.clone());
                let entry = self
                    .derived
                    .entry(key)
                    .or_insert_with(|| ScramVerifier::from_password(p));
                Some(entry.clone())
            }
            Secret::Md5(_) => None,
        }
    }

    fn mock_verifier(&self, user: &str) -> ScramVerifier {
        ScramVerifier::mock(user, &self.mock_key)
    }
}
