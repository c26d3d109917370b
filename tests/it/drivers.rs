//! The driver compatibility matrix: real drivers through the proxy in transaction mode,
//! with more clients than servers, each preparing statements by name, running
//! transactions that commit, roll back and fail, COPY, and SET read back later.
//! asyncpg (`tests/e2e/asyncpg_check.py`) and node-postgres (`tests/e2e/node/check.mjs`)
//! run as subprocesses; tokio-postgres and sqlx run in process. psycopg, psql and
//! pgbench are in `e2e_clients.rs`.

mod rust;

use std::path::{Path, PathBuf};

use crate::common::Proxy;
use crate::e2e_clients::{run, text};

/// Servers per pool: every driver runs several times as many clients on it.
const POOL_SIZE: usize = 4;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Runs a driver's check script against the proxy and expects it to print OK.
async fn run_check(what: &str, program: &str, args: &[&str]) {
    let out = run(program, args).await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert_eq!(stdout.trim_end(), "OK", "{what} stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_asyncpg() {
    let proxy = Proxy::with(|c| c.pool_size = POOL_SIZE).await;
    let script = e2e_dir().join("asyncpg_check.py");
    let (port, pool) = (proxy.port().to_string(), POOL_SIZE.to_string());
    run_check(
        "asyncpg_check.py",
        "python3",
        &[&script.to_string_lossy(), &port, &pool],
    )
    .await;
    proxy.stop().await;
}

/// Installs the locked node packages unless node_modules already matches the lockfile
/// (npm keeps its own copy of the lock it installed in node_modules/.package-lock.json,
/// newer than package-lock.json unless the lock changed since).
async fn npm_ci(dir: &Path) {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    let locked = modified(dir.join("package-lock.json"));
    if matches!((installed, locked), (Some(i), Some(l)) if i >= l) {
        return;
    }
    let prefix = dir.to_string_lossy();
    let out = run(
        "npm",
        &["ci", "--no-audit", "--no-fund", "--prefix", &prefix],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "npm ci failed: {stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_node_postgres() {
    let dir = e2e_dir().join("node");
    npm_ci(&dir).await;
    let proxy = Proxy::with(|c| c.pool_size = POOL_SIZE).await;
    let script = dir.join("check.mjs");
    let (port, pool) = (proxy.port().to_string(), POOL_SIZE.to_string());
    run_check(
        "node check.mjs",
        "node",
        &[&script.to_string_lossy(), &port, &pool],
    )
    .await;
    proxy.stop().await;
}
