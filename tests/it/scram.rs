//! SCRAM-SHA-256 in both directions against a scram-only throwaway cluster: clients log in
//! with plain passwords, verifiers or `auth_query` secrets (and md5); the proxy logs in to the
//! server with a password, with SCRAM pass-through keys, or fails cleanly without either.

use std::sync::{Arc, Weak};

use bytes::BytesMut;
use pgsidecar::config::{AuthType, Config, UserConfig};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::common::cluster::Cluster;
use crate::common::{sqlstate, try_connect, Proxy};

const SUPERUSER_PW: &str = "postgrespw";
const APP_PW: &str = "apppw";
const APP_DB: &str = "appdb";

const SCRAM_HBA: &str = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";

/// A scram-only cluster with a role `app` (password `apppw`) owning database `appdb`.
struct ScramServer {
    cluster: Cluster,
    /// `pg_authid.rolpassword` of `app`: its SCRAM verifier.
    app_verifier: String,
}

impl ScramServer {
    async fn start() -> ScramServer {
        let cluster = tokio::task::block_in_place(|| {
            Cluster::start(
                SCRAM_HBA,
                &["password_encryption = 'scram-sha-256'"],
                Some(SUPERUSER_PW),
            )
        });
        let admin_url = cluster.url("postgres", Some(SUPERUSER_PW), "postgres");
        let admin = try_connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("superuser logs in with SCRAM to {admin_url}: {e}"));
        // Separate statements: CREATE DATABASE cannot run in a multi-statement string.
        for sql in [
            format!("CREATE ROLE app LOGIN PASSWORD '{APP_PW}'"),
            format!("CREATE DATABASE {APP_DB} OWNER app"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let row = admin
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
                &[],
            )
            .await
            .expect("read verifier");
        let app_verifier: String = row.get(0);
        assert!(
            app_verifier.starts_with("SCRAM-SHA-256$4096:"),
            "{app_verifier}"
        );
        ScramServer {
            cluster,
            app_verifier,
        }
    }

    /// The cluster tests share when they leave it as they found it: started by the first
    /// test that needs it, stopped when the last one holding it ends.
    async fn shared() -> Arc<ScramServer> {
        static SHARED: Mutex<Weak<ScramServer>> = Mutex::const_new(Weak::new());
        let mut slot = SHARED.lock().await;
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(ScramServer::start().await);
        *slot = Arc::downgrade(&server);
        server
    }

    /// The upstream URL the proxy uses: superuser with its password.
    fn upstream(&self) -> String {
        self.cluster.url("postgres", Some(SUPERUSER_PW), "postgres")
    }
}

/// A proxy in front of `server` with client auth `auth` and the given users.
async fn proxy(server: &ScramServer, auth: AuthType, users: &[(&str, Option<&str>)]) -> Proxy {
    let upstream = server.upstream();
    let users: Vec<UserConfig> = users
        .iter()
        .map(|(name, password)| UserConfig {
            name: name.to_string(),
            password: password.map(str::to_string),
        })
        .collect();
    Proxy::with(move |c: &mut Config| {
        c.upstream = upstream;
        c.auth_type = auth;
        c.users = users;
    })
    .await
}

/// URL through the proxy for `user` with `password` to `appdb`.
fn url(proxy: &Proxy, user: &str, password: &str) -> String {
    format!(
        "postgres://{user}:{password}@127.0.0.1:{}/{APP_DB}",
        proxy.port()
    )
}

/// The first authentication request the proxy sends `user` (3 cleartext, 5 md5, 10 SASL).
async fn challenge_code(proxy: &Proxy, user: &str) -> i32 {
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let mut out = BytesMut::new();
    frontend::startup_message([("user", user), ("database", APP_DB)], &mut out).expect("startup");
    stream.write_all(&out).await.expect("send startup");
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.expect("read request");
    assert_eq!(head[0], b'R', "an authentication request, got {head:?}");
    i32::from_be_bytes([head[5], head[6], head[7], head[8]])
}

/// Logs in through the proxy and checks who the server thinks we are.
async fn assert_logs_in_as_app(proxy: &Proxy) {
    let client = try_connect(&url(proxy, "app", APP_PW))
        .await
        .unwrap_or_else(|e| panic!("app logs in through the proxy: {e:?}"));
    let row = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .expect("query through the proxy");
    assert_eq!(row.get::<_, String>(0), "app");
    assert_eq!(row.get::<_, String>(1), APP_DB);
}

/// The login must fail with 28P01 and PostgreSQL's exact wording for `user`.
async fn assert_password_rejected(proxy: &Proxy, user: &str, password: &str) {
    let err = match try_connect(&url(proxy, user, password)).await {
        Ok(_) => panic!("{user}/{password} must not log in"),
        Err(e) => e,
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("an ErrorResponse, not {err:?}"));
    assert_eq!(sqlstate(&err), "28P01", "{db:?}");
    assert_eq!(
        db.message(),
        format!("password authentication failed for user \"{user}\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_plain_password_both_ways() {
    let server = ScramServer::shared().await;
    let proxy = proxy(&server, AuthType::ScramSha256, &[("app", Some(APP_PW))]).await;
    assert_eq!(challenge_code(&proxy, "app").await, 10, "SASL");
    assert_logs_in_as_app(&proxy).await;
    // A second client reuses the pool (and the proxy's cached derived verifier).
    assert_logs_in_as_app(&proxy).await;
    // libpq's SCRAM client too.
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-U", "app", "-d", APP_DB])
        .args(["-p", &proxy.port().to_string(), "-c", "SELECT current_user"])
        .env("PGPASSWORD", APP_PW)
        .output()
        .await
        .expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "app\n");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_wrong_password_and_unknown_user_fail_alike() {
    let server = ScramServer::shared().await;
    let proxy = proxy(&server, AuthType::ScramSha256, &[("app", Some(APP_PW))]).await;
    assert_password_rejected(&proxy, "app", "wrong").await;
    assert_password_rejected(&proxy, "nobody", APP_PW).await;
    // The right password still works afterwards.
    assert_logs_in_as_app(&proxy).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_pass_through_with_verifier() {
    let server = ScramServer::shared().await;
    let verifier = server.app_verifier.clone();
    let proxy = proxy(&server, AuthType::ScramSha256, &[("app", Some(&verifier))]).await;
    // The proxy knows only the verifier: it can log in to the scram-only server solely
    // with the ClientKey recovered from the client's proof.
    assert_logs_in_as_app(&proxy).await;
    assert_password_rejected(&proxy, "app", "wrong").await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_auth_query_fetches_verifier() {
    let server = ScramServer::start().await; // its own: it restarts the server
    let upstream = server.upstream();
    let proxy = Proxy::with(move |c| {
        c.upstream = upstream;
        c.auth_type = AuthType::ScramSha256;
        c.auth_query = Some("SELECT usename, passwd FROM pg_shadow WHERE usename = $1".into());
    })
    .await;
    assert_logs_in_as_app(&proxy).await;
    assert_password_rejected(&proxy, "app", "wrong").await;
    assert_password_rejected(&proxy, "nobody", APP_PW).await;
    // The auth_query side connection dies with the server; the next login needs a new one.
    tokio::task::block_in_place(|| server.cluster.restart());
    assert_logs_in_as_app(&proxy).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_server_md5_client() {
    let server = ScramServer::shared().await;
    let proxy = proxy(&server, AuthType::Md5, &[("app", Some(APP_PW))]).await;
    // The proxy asks for md5 (tokio-postgres answers whichever challenge it gets) and then
    // logs in to the scram-only server with the plain password.
    assert_eq!(challenge_code(&proxy, "app").await, 5, "md5");
    assert_logs_in_as_app(&proxy).await;
    assert_password_rejected(&proxy, "app", "wrong").await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_server_without_known_password_fails_cleanly() {
    let server = ScramServer::shared().await;
    let proxy = proxy(&server, AuthType::Trust, &[("app", None)]).await;
    let login = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        try_connect(&url(&proxy, "app", "ignored")),
    )
    .await
    .expect("an answer, not a hang");
    let err = match login {
        Ok(_) => panic!("no usable password: the login must fail"),
        Err(e) => e,
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("an ErrorResponse, not {err:?}"));
    println!("proxy said: {} {}", db.code().code(), db.message());
    let code = sqlstate(&err);
    assert!(code == "08006" || code.starts_with("28"), "{db:?}");
    assert!(db.message().contains("no usable password"), "{db:?}");
    assert!(db.message().contains("\"app\""), "{db:?}");
    proxy.stop().await;
}
