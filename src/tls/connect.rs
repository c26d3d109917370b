//! The server-facing side: which certificates to accept (`server_tls`,
//! `server_tls_ca_file`), the handshake, and the `tls-server-end-point` channel-binding
//! data (RFC 5929) taken from the server's certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{provider, read_pem, TlsError};
use crate::config::ServerTlsMode;

const CA_KEY: &str = "server_tls_ca_file";

/// How to talk TLS to servers, shared by every pool.
pub struct ServerTls {
    pub mode: ServerTlsMode,
    /// `None` when `mode` is disable.
    connector: Option<TlsConnector>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .finish()
    }
}

impl ServerTls {
    /// `verify-full` trusts only `ca_file` and checks the host name; `prefer` and
    /// `require` encrypt without checking who answers (as libpq's modes of those names).
    pub fn new(mode: ServerTlsMode, ca_file: Option<&Path>) -> Result<ServerTls, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(CA_KEY, e))?;
        let config = match mode {
            ServerTlsMode::Disable => None,
            ServerTlsMode::Prefer | ServerTlsMode::Require => Some(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                    .with_no_client_auth(),
            ),
            ServerTlsMode::VerifyFull => {
                let ca_file = ca_file.ok_or(TlsError::Missing {
                    key: CA_KEY,
                    mode: "server_tls = \"verify-full\"".into(),
                })?;
                let mut roots = RootCertStore::empty();
                let certs: Vec<CertificateDer<'static>> = read_pem(CA_KEY, ca_file)?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(TlsError::Pem {
                        key: CA_KEY,
                        path: ca_file.to_path_buf(),
                        reason: "no usable CA certificate in the file".into(),
                    });
                }
                Some(builder.with_root_certificates(roots).with_no_client_auth())
            }
        };
        Ok(ServerTls {
            mode,
            connector: config.map(|c| TlsConnector::from(Arc::new(c))),
        })
    }

    /// Runs the client handshake on a socket whose server has agreed to TLS.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let connector = self.connector.as_ref().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::Unsupported, "server_tls is disable")
        })?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        connector.connect(name, tcp).await
    }
}

/// Accepts any certificate but still checks that the server holds its key (the
/// handshake signatures), so `require` is encryption against passive listeners.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `tls-server-end-point` data: the hash of the server's DER certificate with the hash
/// of its signature algorithm, SHA-256 when that is MD5, SHA-1 or SHA-256 (RFC 5929).
pub fn end_point_hash(cert_der: &[u8]) -> Vec<u8> {
    match signature_hash(cert_der) {
        Hash::Sha384 => sha2::Sha384::digest(cert_der).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(cert_der).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(cert_der).to_vec(),
    }
}

enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// The hash named by a certificate's outer signatureAlgorithm. Anything unrecognised
/// (or unparsable) counts as SHA-256, which covers RSA/ECDSA with SHA-256 and the
/// upgraded MD5/SHA-1 cases.
fn signature_hash(cert_der: &[u8]) -> Hash {
    // DER content octets of the OIDs (tag and length stripped).
    const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    let oid = (|| {
        // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
        let (_, cert, _) = der_item(cert_der)?;
        let (_, _tbs, rest) = der_item(cert)?;
        let (_, algorithm, _) = der_item(rest)?;
        let (tag, oid, _) = der_item(algorithm)?;
        (tag == 0x06).then_some(oid)
    })();
    match oid {
        Some(o) if o == RSA_SHA384 || o == ECDSA_SHA384 => Hash::Sha384,
        Some(o) if o == RSA_SHA512 || o == ECDSA_SHA512 => Hash::Sha512,
        _ => Hash::Sha256,
    }
}

/// Splits one DER item off the front: (tag, contents, rest).
fn der_item(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = data.get(2..2 + n)?;
        let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, 2 + n)
    };
    let contents = data.get(header..header.checked_add(len)?)?;
    Some((tag, contents, &data[header + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_items_split() {
        // SEQUENCE { OID 1.2.3 } followed by a trailing byte.
        let data = [0x30, 0x04, 0x06, 0x02, 0x2a, 0x03, 0xff];
        let (tag, inner, rest) = der_item(&data).unwrap();
        assert_eq!((tag, rest), (0x30, &[0xff][..]));
        assert_eq!(der_item(inner).unwrap().1, &[0x2a, 0x03]);
        assert!(der_item(&[0x30, 0x05, 0x00]).is_none());
        assert!(der_item(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn garbage_hashes_with_sha256() {
        assert_eq!(end_point_hash(b"not a certificate").len(), 32);
    }
}
