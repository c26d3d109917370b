//! TLS with rustls, both ways: the acceptor that serves clients (`client_tls`), the
//! connector and certificate policy for servers (`server_tls`), the plain-or-TLS stream
//! both sides use, and the channel-binding data SCRAM-SHA-256-PLUS needs.
//!
//! Built once from the configuration (and again on reload) into [`Tls`]; a bad file is
//! a [`TlsError`] naming the configuration key, so it reads as a config error.

mod accept;
mod connect;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

pub use accept::acceptor;
pub use connect::{end_point_hash, ServerTls};
pub use stream::{is_socket_dir, unix_socket_path, ClientStream, MaybeTls, OverTcp, ServerStream};

use crate::config::{ClientTlsMode, Config, ConfigError};

/// Failures building TLS from the configuration; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("must be set when {mode}")]
    Missing { key: &'static str, mode: String },
    #[error("cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Rustls(&'static str, #[source] rustls::Error),
}

impl TlsError {
    /// The configuration key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Missing { key, .. }
            | TlsError::Read { key, .. }
            | TlsError::Pem { key, .. }
            | TlsError::Rustls(key, _) => key,
        }
    }
}

impl From<TlsError> for ConfigError {
    fn from(e: TlsError) -> ConfigError {
        ConfigError::Invalid {
            key: e.key().to_string(),
            reason: e.to_string(),
        }
    }
}

/// Loads every file the TLS options name, reporting the first problem as a config error
/// naming the key (for a configuration that is checked but not run).
pub fn check(config: &Config) -> Result<(), ConfigError> {
    Tls::from_config(config)
        .map(drop)
        .map_err(ConfigError::from)
}

/// Everything TLS, ready to use.
#[derive(Clone)]
pub struct Tls {
    /// Set when `client_tls` is `allow` or `require`.
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    pub client_mode: ClientTlsMode,
    pub server: Arc<ServerTls>,
}

impl Tls {
    /// Loads the certificate, key and CA files the configuration names.
    pub fn from_config(config: &Config) -> Result<Tls, TlsError> {
        let acceptor = match config.client_tls {
            ClientTlsMode::Disable => None,
            mode => Some(acceptor(
                config.client_tls_cert_file.as_deref(),
                config.client_tls_key_file.as_deref(),
                mode,
            )?),
        };
        Ok(Tls {
            acceptor,
            client_mode: config.client_tls,
            server: Arc::new(ServerTls::new(
                config.server_tls,
                config.server_tls_ca_file.as_deref(),
            )?),
        })
    }
}

/// The crypto provider every TLS configuration here uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM file's items of one kind, mapping failures to the key.
fn read_pem<T: rustls::pki_types::pem::PemObject>(
    key: &'static str,
    path: &std::path::Path,
) -> Result<Vec<T>, TlsError> {
    use rustls::pki_types::pem::Error as PemError;
    let mapped = |e: PemError| match e {
        PemError::Io(source) => TlsError::Read {
            key,
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            key,
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    };
    T::pem_file_iter(path)
        .map_err(mapped)?
        .collect::<Result<Vec<T>, _>>()
        .map_err(mapped)
}

#[cfg(test)]
mod check_tests {
    use std::path::Path;

    use super::*;

    /// What validating a configuration file and then its TLS files says.
    fn error(text: &str) -> String {
        let config = Config::from_toml(text, Path::new("proxy.toml")).unwrap();
        config.validate().unwrap();
        check(&config).unwrap_err().to_string()
    }

    #[test]
    fn missing_files_name_the_key() {
        let e = error("client_tls = \"require\"\n");
        assert_eq!(
            e,
            "config key client_tls_cert_file: must be set when client_tls = \"require\""
        );
        let e = error(
            "client_tls = \"allow\"\nclient_tls_cert_file = \"/nonexistent/cert.pem\"\n\
             client_tls_key_file = \"/nonexistent/key.pem\"\n",
        );
        assert!(
            e.starts_with("config key client_tls_cert_file: cannot read /nonexistent/cert.pem"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = error("server_tls = \"verify-full\"\n");
        assert!(
            e.starts_with("config key server_tls_ca_file: must be set"),
            "{e}"
        );
        // Modes that verify nothing need no file.
        let ok = Config::from_toml("server_tls = \"require\"\n", Path::new("proxy.toml")).unwrap();
        ok.validate().unwrap();
        check(&ok).unwrap();
    }
}
