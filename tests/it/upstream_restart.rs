//! The upstream going away: a proxy started while the server is down, a restart under an
//! idle pool, and a restart under load; the proxy must report, replace dead servers and heal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::cluster::Cluster;
use crate::common::{sqlstate, try_connect, Proxy};

const TRUST_HBA: &str = "local all all trust\nhost all all 127.0.0.1/32 trust\n";

fn start_cluster() -> Cluster {
    tokio::task::block_in_place(|| Cluster::start(TRUST_HBA, &[], None))
}

/// A proxy in front of `cluster` (trust everywhere).
async fn proxy_for(cluster: &Cluster, pool_size: usize) -> Proxy {
    let upstream = cluster.url("postgres", None, "postgres");
    Proxy::with(move |c| {
        c.upstream = upstream;
        c.pool_size = pool_size;
        c.checkout_timeout = Duration::from_secs(3);
        c.server_connect_timeout = Duration::from_secs(3);
    })
    .await
}

/// The pid of the server that ran the query. Simple protocol on purpose: tokio-postgres'
/// extended protocol closes its statement afterwards in the background, a request that
/// would borrow a server at a moment the test does not control.
async fn backend_pid(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let messages = client.simple_query("SELECT pg_backend_pid()").await?;
    let pid = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(|p| p.parse().ok()),
        _ => None,
    });
    Ok(pid.expect("a row with the pid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_at_start_then_up() {
    let cluster = start_cluster();
    tokio::task::block_in_place(|| cluster.stop());
    let proxy = proxy_for(&cluster, 4).await;

    let err = match try_connect(&proxy.url("postgres", "postgres")).await {
        Ok(_) => panic!("no server is reachable: the login must fail"),
        Err(e) => e,
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("an ErrorResponse, not {err:?}"));
    assert_eq!(sqlstate(&err), "08006", "{db:?}");
    let address = format!("127.0.0.1:{}", cluster.port);
    assert!(db.message().contains(&address), "names {address}: {db:?}");

    tokio::task::block_in_place(|| cluster.start_again());
    let client = try_connect(&proxy.url("postgres", "postgres"))
        .await
        .expect("the same proxy serves once the server is back");
    assert!(backend_pid(&client).await.expect("query") > 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_restart_under_idle_pool() {
    let cluster = start_cluster();
    let proxy = proxy_for(&cluster, 4).await;
    let client = proxy.client().await;
    let before = backend_pid(&client).await.expect("first query");
    let pool = proxy.app.shared().pool("postgres", "postgres");
    // The reply reaches the client just before the session gives the server back.
    wait_until("the server is back in the pool", || pool.idle_count() == 1).await;

    tokio::task::block_in_place(|| cluster.restart());

    // The idle server is dead; the proxy must notice and open a new one for the same
    // client connection instead of handing the corpse out.
    let after = backend_pid(&client)
        .await
        .expect("same client, query after the restart");
    assert_ne!(before, after, "a new server process serves the query");
    wait_until("the new server is back in the pool", || {
        pool.idle_count() == 1
    })
    .await;
    let fresh = proxy.client().await;
    assert!(backend_pid(&fresh).await.expect("new client") > 0);
    // The dead server was closed; the new one served both clients.
    assert_eq!(pool.counters.open.load(Ordering::Relaxed), 1);
    proxy.stop().await;
}

/// Polls `cond` every few milliseconds for up to 5 s.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Counts of one load task.
#[derive(Debug, Default)]
struct LoadStats {
    ok: usize,
    errors: usize,
    ok_after_restart: usize,
    /// Failed queries or logins begun after the restart had finished.
    errors_after_restart: usize,
}

/// Runs `SELECT 1` on its own connection until `restarted` is set and it has seen
/// `wanted` successes since, reconnecting after any error. Gives up at `deadline`.
async fn load_task(
    url: String,
    restarted: Arc<AtomicBool>,
    wanted: usize,
    deadline: Instant,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut client: Option<Client> = None;
    while Instant::now() < deadline && stats.ok_after_restart < wanted {
        let after = restarted.load(Ordering::SeqCst);
        let conn = match &client {
            Some(c) if !c.is_closed() => c,
            _ => match try_connect(&url).await {
                Ok(c) => client.insert(c),
                Err(_) => {
                    stats.failed(after).await;
                    continue;
                }
            },
        };
        match conn.simple_query("SELECT 1").await {
            Ok(_) => {
                stats.ok += 1;
                stats.ok_after_restart += usize::from(after);
            }
            Err(_) => {
                stats.failed(after).await;
                client = None;
            }
        }
    }
    stats
}

impl LoadStats {
    async fn failed(&mut self, after_restart: bool) {
        self.errors += 1;
        self.errors_after_restart += usize::from(after_restart);
        // Back-off before retrying, so a down server is not hammered.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_restart_under_load() {
    const TASKS: usize = 8;
    const WANTED: usize = 20;
    let cluster = start_cluster();
    let proxy = proxy_for(&cluster, 4).await;
    let restarted = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let url = proxy.url("postgres", "postgres");
            tokio::spawn(load_task(url, restarted.clone(), WANTED, deadline))
        })
        .collect();
    // Let the load get going before pulling the server away.
    let pool = proxy.app.shared().pool("postgres", "postgres");
    wait_until("the load is running", || {
        pool.counters.checkouts.load(Ordering::Relaxed) >= 100
    })
    .await;
    let started = Instant::now();
    let cluster = Arc::new(cluster);
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .expect("restart");
    restarted.store(true, Ordering::SeqCst);
    let mut errors = 0;
    for task in tasks {
        let stats = task.await.expect("load task does not panic");
        assert!(stats.ok_after_restart >= WANTED, "task healed: {stats:?}");
        // Dead servers must never be handed out once the server is back.
        assert_eq!(stats.errors_after_restart, 0, "{stats:?}");
        errors += stats.errors;
    }
    println!(
        "healed {:?} after the restart began; {errors} errors seen by clients",
        started.elapsed()
    );
    assert_pool_fully_usable(&proxy, 4).await;
    proxy.stop().await;
}

/// `size` clients can each hold a server in an open transaction at once: no server or
/// permit was leaked by the failures.
async fn assert_pool_fully_usable(proxy: &Proxy, size: usize) {
    let mut clients = Vec::new();
    for _ in 0..size {
        let client = proxy.client().await;
        client
            .batch_execute("BEGIN; SELECT 1")
            .await
            .expect("a server for every pool slot");
        clients.push(client);
    }
    let pool = proxy.app.shared().pool("postgres", "postgres");
    assert!(pool.counters.open.load(Ordering::Relaxed) <= size);
    for client in &clients {
        client.batch_execute("COMMIT").await.expect("commit");
    }
}
