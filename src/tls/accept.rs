//! The client-facing side: a rustls server configuration from `client_tls_cert_file` and
//! `client_tls_key_file`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::{provider, read_pem, TlsError};
use crate::config::ClientTlsMode;

const CERT_KEY: &str = "client_tls_cert_file";
const KEY_KEY: &str = "client_tls_key_file";

/// Builds the acceptor; both files must be set and hold a matching certificate chain
/// and private key.
pub fn acceptor(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    mode: ClientTlsMode,
) -> Result<TlsAcceptor, TlsError> {
    let missing = |key| TlsError::Missing {
        key,
        mode: format!("client_tls = \"{}\"", mode.as_str()),
    };
    let cert_file = cert_file.ok_or_else(|| missing(CERT_KEY))?;
    let key_file = key_file.ok_or_else(|| missing(KEY_KEY))?;
    let certs: Vec<CertificateDer<'static>> = read_pem(CERT_KEY, cert_file)?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key: CERT_KEY,
            path: cert_file.to_path_buf(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            key: KEY_KEY,
            path: key_file.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            key: KEY_KEY,
            path: key_file.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(CERT_KEY, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(KEY_KEY, e))?;
    // What PostgreSQL 17 negotiates; clients that send no ALPN are unaffected.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
