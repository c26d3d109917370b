//! The proxy answers md5 and cleartext password challenges from the server (SCRAM is in
//! `scram.rs`), with a plain password or, for md5, only the stored hash.

use pgsidecar::auth::md5::md5_stored;
use pgsidecar::config::{AuthType, UserConfig};

use crate::common::cluster::Cluster;
use crate::common::{connect, sqlstate, try_connect, Proxy};

const HBA: &str = "local all all trust\n\
host all md5user 127.0.0.1/32 md5\n\
host all clearuser 127.0.0.1/32 password\n\
host all postgres 127.0.0.1/32 trust\n";

async fn cluster_with_users() -> Cluster {
    let cluster = Cluster::start(HBA, &["password_encryption = 'md5'"], None);
    let admin = connect(&cluster.url("postgres", None, "postgres")).await;
    admin
        .batch_execute(
            "SET password_encryption = 'md5';
             CREATE ROLE md5user LOGIN PASSWORD 'md5pw';
             CREATE ROLE clearuser LOGIN PASSWORD 'clearpw';",
        )
        .await
        .unwrap();
    cluster
}

async fn proxy_for(cluster: &Cluster, users: Vec<UserConfig>) -> Proxy {
    Proxy::with(|c| {
        c.upstream = cluster.url("postgres", None, "postgres");
        c.auth_type = AuthType::Trust;
        c.users = users;
    })
    .await
}

fn user(name: &str, password: &str) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: Some(password.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_and_cleartext_towards_the_server() {
    let cluster = cluster_with_users().await;
    // Plain passwords answer both methods.
    let proxy = proxy_for(
        &cluster,
        vec![user("md5user", "md5pw"), user("clearuser", "clearpw")],
    )
    .await;
    for name in ["md5user", "clearuser"] {
        let client = connect(&proxy.url(name, "postgres")).await;
        let who: String = client
            .query_one("SELECT current_user", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, name);
    }
    proxy.stop().await;

    // Only the md5 hash in the configuration: md5 still works.
    let proxy = proxy_for(
        &cluster,
        vec![user("md5user", &md5_stored("md5user", "md5pw"))],
    )
    .await;
    let client = connect(&proxy.url("md5user", "postgres")).await;
    let who: String = client
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "md5user");
    proxy.stop().await;

    // A wrong configured password: the server's refusal reaches the client.
    let proxy = proxy_for(&cluster, vec![user("clearuser", "wrong")]).await;
    let err = try_connect(&proxy.url("clearuser", "postgres"))
        .await
        .expect_err("server refuses");
    assert_eq!(sqlstate(&err), "28P01");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "password authentication failed for user \"clearuser\""
    );
    proxy.stop().await;
}
