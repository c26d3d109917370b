//! The randomized checker (`tests/e2e/cache_checker.py`, helper E's) over two sidecars
//! with the cache on and a direct writer: no read through a sidecar is older than a
//! write committed through it before the read began, and direct writes show through
//! every sidecar within the bound. Short here (10 s); run the script for 60 s by hand.

use std::path::Path;
use std::sync::atomic::Ordering;

use pgsidecar::cache::config::CacheMode;
use serde_json::Value;

use super::CacheDb;
use crate::e2e_clients::{run, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caching_sidecars_never_serve_stale_reads() {
    let db = CacheDb::create("").await;
    db.install().await;
    let a = db.proxy(CacheMode::Auto, None).await;
    let b = db.proxy(CacheMode::Auto, None).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/cache_checker.py");
    let script = script.to_string_lossy().into_owned();
    let (ua, ub) = (a.url("postgres", &db.name), b.url("postgres", &db.name));
    let args = [
        script.as_str(),
        "--direct",
        db.url.as_str(),
        "--sidecar",
        ua.as_str(),
        "--sidecar",
        ub.as_str(),
        "--duration",
        "10",
        "--bound-ms",
        "2000",
    ];
    let out = run("python3", &args).await;
    let (stdout, stderr) = text(&out);
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("checker printed no JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(out.status.code(), Some(0), "{summary:#}\n{stderr}");
    assert_eq!(summary["violations"], 0, "{summary:#}");
    let hits = a.app.shared().cache.stats.hits.load(Ordering::Relaxed)
        + b.app.shared().cache.stats.hits.load(Ordering::Relaxed);
    eprintln!("cache checker: {hits} hits; {summary}");
    a.stop().await;
    b.stop().await;
}
