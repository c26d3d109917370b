//! Reading `proxy.toml`, applying command-line and environment overrides, and validation.
//!
//! Every failure is one line that names the key, so an operator can fix it without
//! reading a stack of parser output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Config, LogFormat, PoolMode, Upstream};
use crate::auth::scram::ScramVerifier;

/// A configuration problem, rendered as one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
    #[error("config key {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// Values from the command line or environment; each one set wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub pool_mode: Option<PoolMode>,
    pub pool_size: Option<usize>,
    pub admin_listen: Option<String>,
    pub log_format: Option<LogFormat>,
    pub admin_users: Option<Vec<String>>,
    pub auth_type: Option<super::AuthType>,
}

impl Config {
    /// Reads and validates a file (or the defaults when `path` is `None`), then applies
    /// the overrides and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => Self::from_file(p)?,
            None => Config::default(),
        };
        overrides.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text; `path` only labels errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| parse_error(text, path, &e))
    }

    /// Checks the values serde cannot: addresses, ranges, URLs, user entries.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_string(),
            reason,
        };
        for (key, addr) in [
            ("listen", &self.listen),
            ("admin_listen", &self.admin_listen),
        ] {
            addr.parse::<SocketAddr>()
                .map_err(|e| invalid(key, format!("{addr:?} is not ADDR:PORT ({e})")))?;
        }
        Upstream::parse(&self.upstream).map_err(|e| invalid("upstream", e))?;
        if let Some(dir) = &self.listen_unix_dir {
            if !dir.starts_with('/') || !Path::new(dir).is_dir() {
                return Err(invalid(
                    "listen_unix_dir",
                    format!("{dir:?} is not an existing directory (absolute path)"),
                ));
            }
        }
        check_pool_sizes("", self.pool_size, self.min_pool_size)?;
        (self.advisor.validate()).map_err(|(k, r)| invalid(&format!("advisor.{k}"), r))?;
        for (name, db) in &self.databases {
            let size = db.pool_size.unwrap_or(self.pool_size);
            let min = db.min_pool_size.unwrap_or(self.min_pool_size);
            check_pool_sizes(&format!("databases.{name}."), size, min)?;
        }
        if self.max_client_conn == 0 {
            return Err(invalid("max_client_conn", "must be at least 1".into()));
        }
        if self.admin_token.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(
                "admin_token",
                "must not be empty (leave it unset to open the API)".into(),
            ));
        }
        if self.max_fingerprints == 0 {
            return Err(invalid("max_fingerprints", "must be at least 1".into()));
        }
        if self.client_buffer_budget < 1024 * 1024 {
            return Err(invalid(
                "client_buffer_budget",
                "must be at least 1048576 (1 MiB)".into(),
            ));
        }
        if self.max_message_size < 1024 {
            return Err(invalid("max_message_size", "must be at least 1024".into()));
        }
        if self.checkout_timeout.is_zero() {
            return Err(invalid("checkout_timeout", "must be more than 0".into()));
        }
        if self.server_connect_timeout.is_zero() {
            return Err(invalid(
                "server_connect_timeout",
                "must be more than 0".into(),
            ));
        }
        self.validate_slow()?;
        (self.cache.validate()).map_err(|(key, reason)| invalid(&key, reason))?;
        self.validate_users()
    }

    #[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
    fn validate_slow(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        let order = |key: &str, warning: u64, critical: u64| {
            if critical < warning {
                return Err(invalid(
                    format!("{key}slow_critical_ms"),
                    "must not be below slow_warning_ms",
                ));
            }
            Ok(())
        };
        order("", self.slow_warning_ms, self.slow_critical_ms)?;
        for (name, db) in &self.databases {
            let warning = db.slow_warning_ms.unwrap_or(self.slow_warning_ms);
            let critical = db.slow_critical_ms.unwrap_or(self.slow_critical_ms);
            order(&format!("databases.{name}."), warning, critical)?;
        }
        for (fp, t) in &self.slow_fingerprints {
            let key = format!("slow_fingerprints.{fp}");
            if fp.len() != 16 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(key, "must be a fingerprint of 16 hex digits"));
            }
            let warning = t.slow_warning_ms.unwrap_or(self.slow_warning_ms);
            let critical = t.slow_critical_ms.unwrap_or(self.slow_critical_ms);
            order(&format!("{key}."), warning, critical)?;
        }
        if self.alert_consecutive == 0 {
            return Err(invalid("alert_consecutive".into(), "must be at least 1"));
        }
        if let Some(url) = &self.alert_webhook_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "alert_webhook_url".into(),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(url) = &self.store_url {
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| invalid("store_url".into(), &e.to_string()))?;
        }
        if self.retention_days == 0 {
            return Err(invalid("retention_days".into(), "must be at least 1"));
        }
        if self.stats_flush_interval < Duration::from_secs(1) {
            return Err(invalid(
                "stats_flush_interval".into(),
                "must be at least 1s",
            ));
        }
        if self.explain_statement_timeout.is_zero() {
            return Err(invalid(
                "explain_statement_timeout".into(),
                "must be more than 0",
            ));
        }
        let factor = self.explain_latency_factor;
        if !(factor == 0.0 || factor.is_finite() && factor > 1.0) {
            return Err(invalid(
                "explain_latency_factor".into(),
                "must be 0 (off) or a number above 1",
            ));
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for user in &self.users {
            let key = format!("users.{}", user.name);
            if user.name.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "users.name".into(),
                    reason: "must not be empty".into(),
                });
            }
            if !seen.insert(&user.name) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "listed twice".into(),
                });
            }
            if let Some(p) = &user.password {
                if p.starts_with("SCRAM-SHA-256$") && ScramVerifier::parse(p).is_none() {
                    return Err(ConfigError::Invalid {
                        key: format!("{key}.password"),
                        reason: "looks like a SCRAM verifier but does not parse".into(),
                    });
                }
            }
        }
        let unused = match self.auth_type {
            super::AuthType::Trust => Some("trust"),
            super::AuthType::Passthrough => Some("passthrough"),
            _ => None,
        };
        if let (Some(_), Some(kind)) = (&self.auth_query, unused) {
            return Err(ConfigError::Invalid {
                key: "auth_query".into(),
                reason: format!("has no use with auth_type = \"{kind}\""),
            });
        }
        Ok(())
    }
}

fn check_pool_sizes(prefix: &str, size: usize, min: usize) -> Result<(), ConfigError> {
    if size == 0 {
        return Err(ConfigError::Invalid {
            key: format!("{prefix}pool_size"),
            reason: "must be at least 1".into(),
        });
    }
    if min > size {
        return Err(ConfigError::Invalid {
            key: format!("{prefix}min_pool_size"),
            reason: format!("{min} is larger than pool_size {size}"),
        });
    }
    Ok(())
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(v) = &self.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &self.upstream {
            config.upstream = v.clone();
        }
        if let Some(v) = self.pool_mode {
            config.pool_mode = v;
        }
        if let Some(v) = self.pool_size {
            config.pool_size = v;
        }
        if let Some(v) = &self.admin_listen {
            config.admin_listen = v.clone();
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(v) = &self.admin_users {
            config.admin_users = v.clone();
        }
        if let Some(v) = self.auth_type {
            config.auth_type = v;
        }
    }
}

/// Turns toml's multi-line report into one line: file, line, the key on that line, reason.
fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let key = line_text
        .split('=')
        .next()
        .map(|k| k.trim().trim_matches(|c| c == '[' || c == ']').trim())
        .filter(|k| !k.is_empty())
        .unwrap_or("(top level)")
        .to_string();
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        key,
        reason: err.message().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests;
