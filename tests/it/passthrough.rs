//! `auth_type = "passthrough"` (the default without `[[users]]` and `auth_query`): the
//! server checks the credentials each client presents. In process against a throwaway
//! scram-sha-256 cluster: pooled logins with the kept keys, a password changed on the
//! server, clients on a non-loopback address (SCRAM against the kept keys), per-user
//! failure limits. The README's no-file command line is run in `passthrough_cli.rs`.

use std::net::{IpAddr, SocketAddr};

use pgsidecar::config::AuthType;
use tokio_postgres::Client;

use crate::common::cluster::Cluster;
use crate::common::{sqlstate, try_connect, Proxy};

pub const SUPERUSER_PW: &str = "postgrespw";
pub const SCRAM_HBA: &str = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";

/// A scram-only cluster with a superuser password.
pub fn scram_cluster() -> Cluster {
    tokio::task::block_in_place(|| {
        Cluster::start(
            SCRAM_HBA,
            &["password_encryption = 'scram-sha-256'"],
            Some(SUPERUSER_PW),
        )
    })
}

/// The superuser's connection to the cluster, bypassing the proxy.
pub async fn admin(cluster: &Cluster) -> Client {
    let url = cluster.url("postgres", Some(SUPERUSER_PW), "postgres");
    try_connect(&url).await.expect("superuser logs in")
}

/// A local address other than loopback, so the proxy sees a remote client; `None` on a
/// machine without one.
pub fn remote_ip() -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

async fn proxy_for(cluster: &Cluster, listen: &str) -> Proxy {
    Proxy::with(|c| {
        c.upstream = cluster.url("postgres", None, "postgres");
        c.auth_type = AuthType::Auto;
        c.listen = listen.to_string();
        c.pool_size = 3;
    })
    .await
}

fn url(addr: SocketAddr, user: &str, password: &str) -> String {
    format!(
        "postgres://{user}:{password}@{}:{}/postgres",
        addr.ip(),
        addr.port()
    )
}

async fn who(client: &Client) -> String {
    let row = client.query_one("SELECT current_user", &[]).await.unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_checks_passwords_and_pooled_logins_use_the_kept_keys() {
    let cluster = scram_cluster();
    let admin = admin(&cluster).await;
    admin
        .batch_execute("CREATE ROLE app LOGIN PASSWORD 'apppw'")
        .await
        .unwrap();
    let proxy = proxy_for(&cluster, "127.0.0.1:0").await;

    let wrong = try_connect(&url(proxy.addr, "app", "nope"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&wrong), "28P01", "{wrong:?}");
    let text = wrong.as_db_error().unwrap().message().to_string();
    assert_eq!(text, "password authentication failed for user \"app\"");
    let missing = try_connect(&url(proxy.addr, "ghost", "x"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&missing), "28P01", "{missing:?}");

    // Three clients each hold a transaction: the pool logs in three times, the first
    // with the password's keys kept from the client's login, the others the same way.
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(try_connect(&url(proxy.addr, "app", "apppw")).await.unwrap());
    }
    let mut pids = std::collections::HashSet::new();
    for c in &clients {
        c.batch_execute("BEGIN").await.unwrap();
        let row = c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap();
        pids.insert(row.get::<_, i32>(0));
        assert_eq!(who(c).await, "app");
    }
    assert_eq!(pids.len(), 3, "three server logins as app");
    for c in &clients {
        c.batch_execute("COMMIT").await.unwrap();
    }

    // A new password on the server: a loopback client presenting it is checked by the
    // server at once; the old one no longer gets in.
    admin
        .batch_execute("ALTER ROLE app PASSWORD 'apppw2'")
        .await
        .unwrap();
    let fresh = try_connect(&url(proxy.addr, "app", "apppw2"))
        .await
        .unwrap();
    assert_eq!(who(&fresh).await, "app");
    let old = try_connect(&url(proxy.addr, "app", "apppw"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&old), "28P01", "{old:?}");
    drop((clients, fresh));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_clients_get_scram_and_a_changed_password_takes_effect_at_a_failed_pooled_login() {
    let Some(ip) = remote_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let cluster = scram_cluster();
    let admin = admin(&cluster).await;
    admin
        .batch_execute("CREATE ROLE remote LOGIN PASSWORD 'r1'")
        .await
        .unwrap();
    let proxy = proxy_for(&cluster, "0.0.0.0:0").await;
    let remote = SocketAddr::new(ip, proxy.port());
    let local = SocketAddr::from(([127, 0, 0, 1], proxy.port()));

    // Nothing to check a SCRAM login against yet, and no cleartext over plain TCP.
    let early = try_connect(&url(remote, "remote", "r1")).await.unwrap_err();
    assert_eq!(sqlstate(&early), "28000", "{early:?}");
    let text = early.as_db_error().unwrap().message().to_string();
    assert!(
        text.contains("only asked for over TLS or from this host"),
        "{text}"
    );

    // One login from this host keeps the keys; remote clients then get SCRAM.
    let first = try_connect(&url(local, "remote", "r1")).await.unwrap();
    assert_eq!(who(&first).await, "remote");
    let c = try_connect(&url(remote, "remote", "r1")).await.unwrap();
    assert_eq!(who(&c).await, "remote");
    let wrong = try_connect(&url(remote, "remote", "bad"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&wrong), "28P01", "{wrong:?}");
    drop((first, c));

    // The password changes and the pool's servers go away. The next remote client still
    // passes the kept keys, but the pool's login with them fails: that drops the keys.
    admin
        .batch_execute(
            "ALTER ROLE remote PASSWORD 'r2';
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'remote';",
        )
        .await
        .unwrap();
    let stale = try_connect(&url(remote, "remote", "r1")).await.unwrap();
    let refused = stale.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(sqlstate(&refused).starts_with("28"), "{refused:?}");
    let after = try_connect(&url(remote, "remote", "r1")).await.unwrap_err();
    assert_eq!(sqlstate(&after), "28000", "keys dropped: {after:?}");
    let renewed = try_connect(&url(local, "remote", "r2")).await.unwrap();
    assert_eq!(who(&renewed).await, "remote");
    let c = try_connect(&url(remote, "remote", "r2")).await.unwrap();
    assert_eq!(who(&c).await, "remote");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_user() {
    let cluster = scram_cluster();
    let admin = admin(&cluster).await;
    admin
        .batch_execute(
            "CREATE ROLE limited LOGIN PASSWORD 'lpw'; CREATE ROLE other LOGIN PASSWORD 'opw'",
        )
        .await
        .unwrap();
    let proxy = proxy_for(&cluster, "127.0.0.1:0").await;
    for _ in 0..5 {
        let e = try_connect(&url(proxy.addr, "limited", "guess"))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "28P01", "{e:?}");
    }
    // Even the right password waits now, without reaching the server.
    let e = try_connect(&url(proxy.addr, "limited", "lpw"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28000", "{e:?}");
    let text = e.as_db_error().unwrap().message().to_string();
    assert!(
        text.contains("too many failed logins for user \"limited\""),
        "{text}"
    );
    let ok = try_connect(&url(proxy.addr, "other", "opw")).await.unwrap();
    assert_eq!(who(&ok).await, "other");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ok = try_connect(&url(proxy.addr, "limited", "lpw"))
        .await
        .unwrap();
    assert_eq!(who(&ok).await, "limited");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_and_cleartext_servers_work_through_pass_through_too() {
    let hba = "local all all trust\n\
               host all md5user 127.0.0.1/32 md5\n\
               host all clearuser 127.0.0.1/32 password\n\
               host all postgres 127.0.0.1/32 trust\n";
    let cluster =
        tokio::task::block_in_place(|| Cluster::start(hba, &["password_encryption = 'md5'"], None));
    let direct = try_connect(&cluster.url("postgres", None, "postgres"))
        .await
        .unwrap();
    direct
        .batch_execute(
            "SET password_encryption = 'md5';
             CREATE ROLE md5user LOGIN PASSWORD 'm5';
             CREATE ROLE clearuser LOGIN PASSWORD 'cl'",
        )
        .await
        .unwrap();
    let proxy = proxy_for(&cluster, "127.0.0.1:0").await;
    for (user, password) in [("md5user", "m5"), ("clearuser", "cl")] {
        let wrong = try_connect(&url(proxy.addr, user, "x")).await.unwrap_err();
        assert_eq!(sqlstate(&wrong), "28P01", "{user}: {wrong:?}");
        // Two clients in transactions: the second server login uses what was kept.
        let a = try_connect(&url(proxy.addr, user, password)).await.unwrap();
        let b = try_connect(&url(proxy.addr, user, password)).await.unwrap();
        a.batch_execute("BEGIN").await.unwrap();
        b.batch_execute("BEGIN").await.unwrap();
        assert_eq!(who(&a).await, user);
        assert_eq!(who(&b).await, user);
        let pa: i32 = a
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let pb: i32 = b
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_ne!(pa, pb, "{user}: two server logins");
    }
    proxy.stop().await;
}
