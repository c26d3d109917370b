//! What bad logins, silent sockets and big messages can make the proxy hold: pools for
//! databases that do not exist are forgotten, sockets that never send a startup packet
//! cannot keep real clients out under `max_client_conn`, and buffered client messages
//! stay within `client_buffer_budget`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::{one, Http};
use crate::common::raw::{error_code, error_message, query, startup_packet, Raw};
use crate::common::{unique, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_to_missing_databases_leave_no_pools() {
    const LOGINS: usize = 2000;
    const AT_ONCE: usize = 16;
    let proxy = Proxy::with(|_| {}).await;
    let good = proxy.client().await;
    good.simple_query("SELECT 1").await.unwrap();
    let prefix = unique("nosuchdb");
    let addr = proxy.addr;
    let workers: Vec<_> = (0..AT_ONCE)
        .map(|w| {
            let prefix = prefix.clone();
            tokio::spawn(async move {
                for i in (w..LOGINS).step_by(AT_ONCE) {
                    let stream = TcpStream::connect(addr).await.expect("connect");
                    let mut raw = Raw::from_stream(stream);
                    raw.send(&startup_packet("postgres", &format!("{prefix}_{i}")))
                        .await;
                    let frames = raw.until_ready().await;
                    let error = frames.iter().find(|f| f.0 == b'E').expect("an error");
                    assert_eq!(error_code(&error.1), "3D000");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let shared = proxy.app.shared();
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.pools.len() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shared.pools.len(), 1, "only the pool in use is left");
    let (_, metrics) = Http::new(&proxy).text("/metrics").await;
    assert!(
        !metrics.contains(&prefix),
        "no series for missing databases"
    );
    // The pool in use stays, with its servers.
    good.simple_query("SELECT 1").await.unwrap();
    assert!(shared.pools.iter().any(|p| p.key.database == "postgres"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_do_not_keep_clients_out() {
    const LIMIT: usize = 20;
    let proxy = Proxy::with(|c| {
        c.max_client_conn = LIMIT;
        c.client_login_timeout = Duration::from_secs(30);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..LIMIT + 1 {
        silent.push(TcpStream::connect(proxy.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let client = tokio::time::timeout(Duration::from_secs(3), proxy.client())
        .await
        .expect("a real client logs in at once despite the silent sockets");
    client.simple_query("SELECT 1").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    // The oldest silent sockets were the ones shed.
    let mut first = silent.remove(0);
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), first.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "oldest silent socket closed"
    );
    // Logged-in clients still count against max_client_conn on their own.
    let mut clients = vec![client];
    for _ in 1..LIMIT {
        clients.push(proxy.client().await);
    }
    let err = crate::common::try_connect(&proxy.url("postgres", "postgres"))
        .await
        .expect_err("one past max_client_conn");
    assert_eq!(crate::common::sqlstate(&err), "53300");
    proxy.stop().await;
}

/// A Query of `len` bytes in all: `SELECT length('xxx…')`.
fn big_query(len: usize) -> Vec<u8> {
    let head = "SELECT length('";
    let tail = "')";
    let filler = len - 5 - head.len() - tail.len() - 1;
    query(&format!("{head}{}{tail}", "x".repeat(filler)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_buffer_budget_refuses_the_client_over_it_only() {
    const MIB: usize = 1024 * 1024;
    let proxy = Proxy::with(|c| {
        c.client_buffer_budget = 12 * MIB;
        c.max_message_size = 32 * MIB;
        // Statistics would normalize the big text: slow in a debug build, and unrelated.
        c.stats = false;
    })
    .await;
    let http = Http::new(&proxy);
    let buffered = || async {
        let metrics = Http::new(&proxy).metrics().await;
        one(&metrics, "pgsidecar_client_buffer_bytes", &[])
    };
    // A holds most of a 6 MiB Query in the proxy's buffers (8 MiB of buffer, 7.5 charged).
    let big = big_query(6 * MIB);
    let (mut a, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    a.send(&big[..5 * MIB]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while buffered().await < 7.0 * MIB as f64 {
        assert!(Instant::now() < deadline, "A's buffer never grew");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B does the same: its buffer does not fit next to A's.
    let (mut b, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let _ = b.stream.write_all(&big[..5 * MIB]).await;
    let frames = b.until_ready().await;
    let error = frames.iter().find(|f| f.0 == b'E').expect("B refused");
    assert_eq!(error_code(&error.1), "53200");
    assert!(error_message(&error.1).contains("client_buffer_budget"));
    assert!(b.recv().await.is_none(), "B closed");
    let metrics = http.metrics().await;
    assert_eq!(
        one(&metrics, "pgsidecar_client_buffer_refusals_total", &[]),
        1.0
    );
    // Others are unaffected, and A's query completes.
    proxy.client().await.simple_query("SELECT 1").await.unwrap();
    a.send(&big[5 * MIB..]).await;
    let frames = a.until_ready().await;
    assert!(
        frames.iter().any(|f| f.0 == b'D'),
        "A got its row: {:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    // Its memory is given back: the same query fits again.
    let (mut c, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    c.send(&big).await;
    let frames = c.until_ready().await;
    assert!(
        frames.iter().all(|f| f.0 != b'E'),
        "the budget was released"
    );
    assert!(buffered().await < MIB as f64);
    proxy.stop().await;
}
