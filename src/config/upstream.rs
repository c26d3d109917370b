//! The upstream server URL: where pools connect and who the proxy itself is.

use std::str::FromStr;

use tokio_postgres::config::Host;

/// The parts of the upstream URL the proxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl Upstream {
    /// Parses a libpq-style URL or key/value string. The host is a TCP host or, as in
    /// libpq, a socket directory (`host=/var/run/postgresql`).
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let parsed = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
        let host = match parsed.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.to_string_lossy().into_owned(),
            None => "127.0.0.1".to_string(),
        };
        let port = parsed.get_ports().first().copied().unwrap_or(5432);
        let user = parsed.get_user().unwrap_or("postgres").to_string();
        let password = parsed
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let dbname = parsed.get_dbname().unwrap_or(&user).to_string();
        Ok(Upstream {
            host,
            port,
            user,
            password,
            dbname,
        })
    }

    /// Renders back to a URL (used to show the effective configuration).
    pub fn to_url(&self) -> String {
        let auth = match &self.password {
            Some(p) => format!("{}:{}", self.user, p),
            None => self.user.clone(),
        };
        if is_socket_dir(&self.host) {
            return format!(
                "postgres://{auth}@/{}?host={}&port={}",
                self.dbname, self.host, self.port
            );
        }
        format!(
            "postgres://{auth}@{}:{}/{}",
            self.host, self.port, self.dbname
        )
    }

    /// `host:port`, for connecting and for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// True when `host` names a socket directory rather than a TCP host (libpq's rule).
pub fn is_socket_dir(host: &str) -> bool {
    host.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_with_defaults() {
        let u = Upstream::parse("postgres://app:pw@db.example:6543/shop").unwrap();
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, 6543);
        assert_eq!(u.user, "app");
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.dbname, "shop");
        let d = Upstream::parse("postgres://postgres@127.0.0.1").unwrap();
        assert_eq!((d.port, d.dbname.as_str()), (5432, "postgres"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Upstream::parse("postgres://x@:notaport/db").is_err());
    }

    #[test]
    fn accepts_socket_directories() {
        let u = Upstream::parse("host=/var/run/postgresql user=x dbname=app").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("/var/run/postgresql", 5432));
        let v = Upstream::parse("postgres://x@/app?host=/tmp/pg&port=5433").unwrap();
        assert_eq!(
            (v.host.as_str(), v.port, v.dbname.as_str()),
            ("/tmp/pg", 5433, "app")
        );
        assert_eq!(Upstream::parse(&v.to_url()).unwrap(), v);
    }
}
