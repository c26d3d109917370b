//! A store that cannot be reached fails fast instead of hanging.

use std::time::{Duration, Instant};

use pgsidecar::store::{Store, StoreError};
use tokio::net::TcpListener;

#[tokio::test]
async fn refused_connection_errors_quickly() {
    let started = Instant::now();
    let err = Store::connect("postgres://postgres@127.0.0.1:1/postgres", "t")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(err.is_unavailable());
    assert!(err.to_string().contains("127.0.0.1:1/postgres"), "{err}");
}

/// A server that accepts and never answers: the TCP connect succeeds, so only the pool's
/// create timeout stands between the caller and a hang.
#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let err = Store::connect(&url, "t")
        .await
        .expect_err("server never answers");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        took >= Duration::from_secs(4),
        "ended by the timeout, not a refusal: {took:?}"
    );
    assert!(err.is_unavailable(), "{err:?}");
    holder.abort();
}

#[tokio::test]
async fn invalid_url_is_reported_as_such() {
    let err = Store::connect("postgres://h:notaport/db", "t")
        .await
        .expect_err("bad port");
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
}
