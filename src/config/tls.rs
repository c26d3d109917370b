//! The TLS options' types and their check at load: files named must exist and parse,
//! so a bad path is a config error naming the key, not a failure at the first client.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

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

impl Config {
    /// Loads every file the TLS options name, reporting the first problem by key.
    pub(super) fn validate_tls(&self) -> Result<(), ConfigError> {
        crate::tls::Tls::from_config(self)
            .map(|_| ())
            .map_err(ConfigError::from)
    }
}

impl From<crate::tls::TlsError> for ConfigError {
    fn from(e: crate::tls::TlsError) -> ConfigError {
        ConfigError::Invalid {
            key: e.key().to_string(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn error(text: &str) -> String {
        let config = Config::from_toml(text, Path::new("proxy.toml")).unwrap();
        config.validate().unwrap_err().to_string()
    }

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
    }
}
