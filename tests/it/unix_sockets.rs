//! Unix sockets both ways: clients on `listen_unix_dir` (`.s.PGSQL.<port>`, reached by
//! psql with `host=<dir>`), and an upstream given as a socket directory
//! (`host=/var/run/postgresql`), including cancel requests sent over it.

use std::process::Command;
use std::time::Duration;

use crate::common::{connect, sqlstate, Proxy};

/// The local server's socket directory (Debian's), when it has a socket there.
fn server_socket_dir() -> Option<&'static str> {
    let dir = "/var/run/postgresql";
    std::path::Path::new(dir)
        .join(".s.PGSQL.5432")
        .exists()
        .then_some(dir)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(crate::common::unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn psql(conninfo: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-w", "-A", "-t", conninfo, "-c", sql])
        .env_remove("PGPASSWORD")
        .output()
        .expect("run psql")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_a_unix_socket_and_an_upstream_socket_directory() {
    let Some(server_dir) = server_socket_dir() else {
        eprintln!("skipped: no PostgreSQL socket in /var/run/postgresql");
        return;
    };
    let dir = temp_dir("pgsidecar_sock");
    let dir_s = dir.to_string_lossy().to_string();
    let upstream = format!("host={server_dir} port=5432 user=postgres dbname=postgres");
    let proxy = Proxy::with(|c| {
        c.listen_unix_dir = Some(dir_s.clone());
        c.upstream = upstream.clone();
    })
    .await;
    let socket = dir.join(format!(".s.PGSQL.{}", proxy.port()));
    assert!(socket.exists(), "{} exists", socket.display());

    // psql over the proxy's socket; the proxy reaches the server over its socket, so the
    // server sees no TCP peer (inet_server_addr() is NULL).
    let conninfo = format!(
        "host={dir_s} port={} user=postgres dbname=postgres",
        proxy.port()
    );
    let sql = "SELECT current_user, inet_server_addr() IS NULL";
    let out = psql(&conninfo, sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres|t");

    // TCP clients reach the same Unix upstream; a cancel goes over the socket too.
    let client = proxy.client().await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move {
        let r = client.simple_query("SELECT pg_sleep(20)").await;
        r.map(|_| ()).map_err(|e| sqlstate(&e))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the cancel ends the sleep")
        .unwrap();
    assert_eq!(result, Err("57014".to_string()));
    proxy.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_socket_directory_is_refused_and_a_driver_uses_the_socket() {
    let mut config = crate::common::test_config();
    config.listen_unix_dir = Some("/nonexistent/pgsidecar".into());
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("config key listen_unix_dir:"), "{err}");
    // tokio-postgres (a real driver) through the socket, as `host=<dir>` in a URL.
    let dir = temp_dir("pgsidecar_sock2");
    let dir_s = dir.to_string_lossy().to_string();
    let proxy = Proxy::with(|c| c.listen_unix_dir = Some(dir_s.clone())).await;
    let url = format!(
        "host={dir_s} port={} user=postgres dbname=postgres",
        proxy.port()
    );
    let client = connect(&url).await;
    let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    proxy.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
