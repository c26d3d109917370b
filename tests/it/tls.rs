//! TLS both ways: clients to the proxy (`client_tls` allow/require, tokio-postgres with
//! rustls and psql with sslmode=verify-full), the proxy to a throwaway cluster with
//! `ssl = on` and SCRAM over hostssl only (`server_tls = verify-full`, channel binding),
//! a server that refuses TLS, and a bad TLS configuration. Certificates are made here
//! with rcgen: a CA and a server certificate for 127.0.0.1 and localhost.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::Ordering::Relaxed;

use pgsidecar::config::{AuthType, ClientTlsMode, Config, ServerTlsMode, UserConfig};
use pgsidecar::pool::PoolKey;
use pgsidecar::{App, ConfigSource};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::Client;

use crate::common::cluster::Cluster;
use crate::common::{sqlstate, test_config, try_connect, unique, Proxy};

/// A CA and a server certificate signed by it, as PEM files in a fresh directory.
struct Certs {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let dir = std::env::temp_dir().join(unique("pgsidecar-tls"));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pgsidecar test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        let certs = Certs {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            dir,
        };
        std::fs::write(&certs.ca, ca.pem()).expect("write CA");
        std::fs::write(&certs.cert, cert.pem()).expect("write cert");
        std::fs::write(&certs.key, key.serialize_pem()).expect("write key");
        certs.hand_to_postgres();
        certs
    }

    /// PostgreSQL insists that its key file is private to the user it runs as; as root
    /// the clusters run as `postgres`, so the files become theirs (root still reads them).
    fn hand_to_postgres(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod key");
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&self.dir)
            .output();
    }

    /// A rustls client configuration that trusts only this CA.
    fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("read CA") {
            roots.add(cert.expect("CA pem")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client_tls(config: &mut Config, certs: &Certs, mode: ClientTlsMode) {
    config.client_tls = mode;
    config.client_tls_cert_file = Some(certs.cert.clone());
    config.client_tls_key_file = Some(certs.key.clone());
}

/// tokio-postgres over TLS, verifying the proxy's certificate against the test CA and
/// the host name 127.0.0.1.
async fn tls_connect(certs: &Certs, port: u16) -> Result<Client, tokio_postgres::Error> {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(certs.client_config());
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require");
    let (client, connection) = tokio_postgres::connect(&url, tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn select_one(client: &Client) -> i32 {
    client.query_one("SELECT 1", &[]).await.unwrap().get(0)
}

async fn psql(certs: &Certs, port: u16, dbname: &str, sql: &str) -> std::process::Output {
    let conninfo = format!(
        "sslmode=verify-full sslrootcert={} host=127.0.0.1 port={port} user=postgres dbname={dbname}",
        certs.ca.display()
    );
    tokio::process::Command::new("psql")
        .args(["-X", "-At", "-c", sql, &conninfo])
        .output()
        .await
        .expect("run psql")
}

/// The error a plain tokio-postgres client gets from the proxy.
async fn refused(proxy: &Proxy) -> tokio_postgres::Error {
    match try_connect(&proxy.url("postgres", "postgres")).await {
        Ok(_) => panic!("the proxy accepted a client it should have refused"),
        Err(e) => e,
    }
}

/// The message of an ErrorResponse the proxy sent.
fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_require_serves_tls_clients_only() {
    let certs = Certs::new();
    let proxy = Proxy::with(|c| client_tls(c, &certs, ClientTlsMode::Require)).await;

    let client = tls_connect(&certs, proxy.port()).await.expect("TLS client");
    assert_eq!(select_one(&client).await, 1);

    let out = psql(&certs, proxy.port(), "postgres", "SELECT 1").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    let err = refused(&proxy).await;
    assert_eq!(sqlstate(&err), "28000", "{err}");
    assert_eq!(
        message(&err),
        "pgsidecar: TLS is required (client_tls = require); connect with sslmode=require"
    );
    drop(client);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_allow_serves_both() {
    let certs = Certs::new();
    let proxy = Proxy::with(|c| {
        client_tls(c, &certs, ClientTlsMode::Allow);
        c.admin_users = vec!["postgres".into()];
    })
    .await;
    let plain = try_connect(&proxy.url("postgres", "postgres"))
        .await
        .expect("plain client");
    assert_eq!(select_one(&plain).await, 1);
    let tls = tls_connect(&certs, proxy.port()).await.expect("TLS client");
    assert_eq!(select_one(&tls).await, 1);
    // A bigger result crosses many TLS records and the relay's buffers.
    let rows = tls
        .query(
            "SELECT repeat('x', 1000) FROM generate_series(1, 5000)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5000);
    // The admin console over TLS.
    let out = psql(&certs, proxy.port(), "pgsidecar", "SHOW POOLS").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "console: {stderr}");
    proxy.stop().await;
}

const SCRAM_PASSWORD: &str = "tls-secret";

fn tls_cluster(certs: &Certs) -> Cluster {
    let hba = "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n";
    let cert = format!("ssl_cert_file = '{}'", certs.cert.display());
    let key = format!("ssl_key_file = '{}'", certs.key.display());
    Cluster::start(hba, &["ssl = on", &cert, &key], Some(SCRAM_PASSWORD))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_verify_full_with_channel_binding() {
    let certs = Certs::new();
    let cluster = tls_cluster(&certs);
    let proxy = Proxy::with(|c| {
        c.upstream = cluster.url("postgres", Some(SCRAM_PASSWORD), "postgres");
        c.server_tls = ServerTlsMode::VerifyFull;
        c.server_tls_ca_file = Some(certs.ca.clone());
    })
    .await;
    let client = try_connect(&proxy.url("postgres", "postgres"))
        .await
        .expect("client");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the server connection is encrypted");
    assert_eq!(select_one(&client).await, 1);

    // An idle TLS server that the database drops is noticed (peeking at its socket)
    // and replaced, never handed out.
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let admin = tls_connect_to(&certs, cluster.port, SCRAM_PASSWORD).await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("a fresh server after the old one was terminated")
        .get(0);
    assert_ne!(again, pid);
    let key = PoolKey {
        database: "postgres".into(),
        user: "postgres".into(),
    };
    let pool = proxy
        .app
        .shared()
        .pools
        .get(&key)
        .map(|p| p.clone())
        .expect("pool");
    let counters = &pool.counters;
    assert!(counters.tls_logins.load(Relaxed) >= 1);
    assert_eq!(
        counters.channel_bound_logins.load(Relaxed),
        counters.tls_logins.load(Relaxed),
        "every TLS login used SCRAM-SHA-256-PLUS"
    );
    drop(client);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_verify_full_rejects_a_wrong_ca() {
    let certs = Certs::new();
    let other = Certs::new();
    let cluster = tls_cluster(&certs);
    let proxy = Proxy::with(|c| {
        c.upstream = cluster.url("postgres", Some(SCRAM_PASSWORD), "postgres");
        c.server_tls = ServerTlsMode::VerifyFull;
        c.server_tls_ca_file = Some(other.ca.clone());
    })
    .await;
    let err = refused(&proxy).await;
    assert_eq!(sqlstate(&err), "08006", "{err}");
    assert!(message(&err).contains("TLS handshake"), "{err:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_require_against_a_plain_server_is_a_clear_error() {
    let cluster = Cluster::start("host all all 127.0.0.1/32 trust\n", &["ssl = off"], None);
    let proxy = Proxy::with(|c| {
        c.upstream = cluster.url("postgres", None, "postgres");
        c.server_tls = ServerTlsMode::Require;
    })
    .await;
    let err = refused(&proxy).await;
    assert_eq!(sqlstate(&err), "08006", "{err}");
    let address = format!("127.0.0.1:{}", cluster.port);
    let expected = format!("server {address} refused TLS (server_tls = require)");
    assert!(message(&err).contains(&expected), "{err:?}");
    proxy.stop().await;

    // prefer falls back to plain.
    let proxy = Proxy::with(|c| {
        c.upstream = cluster.url("postgres", None, "postgres");
        c.server_tls = ServerTlsMode::Prefer;
    })
    .await;
    let client = try_connect(&proxy.url("postgres", "postgres"))
        .await
        .expect("prefer");
    assert_eq!(select_one(&client).await, 1);
    drop(client);
    proxy.stop().await;
}

#[tokio::test]
async fn client_tls_without_files_is_a_one_line_config_error() {
    let mut config = test_config();
    config.client_tls = ClientTlsMode::Require;
    let err = App::start(config, ConfigSource::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "config key client_tls_cert_file: must be set when client_tls = \"require\""
    );
    let mut config = test_config();
    config.client_tls = ClientTlsMode::Allow;
    config.client_tls_cert_file = Some(Path::new("/nonexistent/server.crt").into());
    config.client_tls_key_file = Some(Path::new("/nonexistent/server.key").into());
    let err = App::start(config, ConfigSource::default())
        .await
        .err()
        .expect("refused");
    let err = err.to_string();
    assert!(
        err.starts_with("config key client_tls_cert_file: cannot read /nonexistent/server.crt"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

/// SCRAM pass-through (the proxy knows only the verifier) binds to the server's TLS
/// connection too: the ClientKey a client proved is independent of channel binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_pass_through_over_tls_uses_channel_binding() {
    let certs = Certs::new();
    let cluster = tls_cluster(&certs);
    let admin = tls_connect_to(&certs, cluster.port, SCRAM_PASSWORD).await;
    admin
        .batch_execute("CREATE ROLE tlsapp LOGIN PASSWORD 'tlsapppw'")
        .await
        .unwrap();
    let verifier: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'tlsapp'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let proxy = Proxy::with(|c| {
        c.upstream = cluster.url("postgres", Some(SCRAM_PASSWORD), "postgres");
        c.auth_type = AuthType::ScramSha256;
        c.users = vec![UserConfig {
            name: "tlsapp".into(),
            password: Some(verifier),
        }];
        c.server_tls = ServerTlsMode::VerifyFull;
        c.server_tls_ca_file = Some(certs.ca.clone());
    })
    .await;
    let url = format!(
        "postgres://tlsapp:tlsapppw@127.0.0.1:{}/postgres",
        proxy.port()
    );
    let client = try_connect(&url).await.expect("pass-through login");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    let key = PoolKey {
        database: "postgres".into(),
        user: "tlsapp".into(),
    };
    let pool = proxy.app.shared().pools.get(&key).map(|p| p.clone());
    let bound = pool
        .expect("pool")
        .counters
        .channel_bound_logins
        .load(Relaxed);
    assert!(bound >= 1, "pass-through used SCRAM-SHA-256-PLUS");
    drop(client);
    proxy.stop().await;
}

/// A direct TLS client to a cluster as postgres with a password (verify-full).
async fn tls_connect_to(certs: &Certs, port: u16, password: &str) -> Client {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(certs.client_config());
    let url = format!(
        "host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres sslmode=require"
    );
    let (client, connection) = tokio_postgres::connect(&url, tls)
        .await
        .expect("direct TLS");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Pass-through asks a client on another host for its password in clear only over TLS:
/// with TLS the first login works, without it the client is told why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_takes_a_cleartext_password_over_tls_from_another_host() {
    let Some(ip) = crate::passthrough::remote_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let certs = Certs::new();
    let cluster = crate::passthrough::scram_cluster();
    crate::passthrough::admin(&cluster)
        .await
        .batch_execute("CREATE ROLE tlsapp LOGIN PASSWORD 'tpw'")
        .await
        .unwrap();
    let proxy = Proxy::with(|c| {
        c.upstream = cluster.url("postgres", None, "postgres");
        c.auth_type = AuthType::Auto;
        c.listen = "0.0.0.0:0".into();
        client_tls(c, &certs, ClientTlsMode::Allow);
    })
    .await;
    let port = proxy.port();
    let plain = format!("host={ip} port={port} user=tlsapp password=tpw dbname=postgres");
    let err = try_connect(&plain).await.unwrap_err();
    assert_eq!(sqlstate(&err), "28000", "{err:?}");

    // TLS to the same address (the certificate names 127.0.0.1, hence hostaddr).
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(certs.client_config());
    let url = format!(
        "host=127.0.0.1 hostaddr={ip} port={port} user=tlsapp password=tpw dbname=postgres sslmode=require"
    );
    let (client, connection) = tokio_postgres::connect(&url, tls).await.expect("TLS login");
    tokio::spawn(connection);
    let row = client.query_one("SELECT current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "tlsapp");
    proxy.stop().await;
}
