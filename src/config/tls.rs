//! The TLS options' types: plain modes and paths. The files they name are loaded (and
//! checked, naming the key) by [`crate::tls::Tls::from_config`]; config never touches
//! TLS itself.

use serde::{Deserialize, Serialize};

/// TLS towards clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTlsMode {
    /// SSLRequest is answered `N`.
    #[default]
    Disable,
    /// SSLRequest is answered `S`; plain clients are served too.
    Allow,
    /// Only TLS clients are served; a plain StartupMessage gets 28000.
    Require,
}

impl ClientTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientTlsMode::Disable => "disable",
            ClientTlsMode::Allow => "allow",
            ClientTlsMode::Require => "require",
        }
    }
}

/// TLS towards servers, named after libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum ServerTlsMode {
    #[default]
    #[serde(rename = "disable")]
    Disable,
    /// TLS when the server agrees, plain otherwise; the certificate is not checked.
    #[serde(rename = "prefer")]
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    #[serde(rename = "require")]
    Require,
    /// TLS, a certificate chain to `server_tls_ca_file`, and the host name in it.
    #[serde(rename = "verify-full")]
    VerifyFull,
}

impl ServerTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerTlsMode::Disable => "disable",
            ServerTlsMode::Prefer => "prefer",
            ServerTlsMode::Require => "require",
            ServerTlsMode::VerifyFull => "verify-full",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    #[test]
    fn modes_parse() {
        let c = Config::from_toml(
            "client_tls = \"allow\"\nserver_tls = \"verify-full\"\n",
            Path::new("proxy.toml"),
        )
        .unwrap();
        assert_eq!(
            (c.client_tls, c.server_tls),
            (ClientTlsMode::Allow, ServerTlsMode::VerifyFull)
        );
        let bad = Config::from_toml("client_tls = \"maybe\"\n", Path::new("proxy.toml"));
        assert!(bad.unwrap_err().to_string().contains("client_tls"));
    }
}
