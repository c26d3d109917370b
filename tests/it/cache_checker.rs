//! The randomized cache checker (`tests/e2e/cache_checker.py`) proven on itself: over
//! two plain in-process sidecars (no cache, so trivially correct) it passes with reads in
//! every protocol and measured visibility latencies, and it fails, with exit status 1
//! and the violation named, when reads really are stale or direct writes never show.

use std::path::Path;

use serde_json::Value;

use crate::common::{connect, database_url, unique, Proxy};
use crate::e2e_clients::{run, text};

/// The database of the test server's URL, for URLs through the proxies.
fn database() -> String {
    let url = database_url();
    let path = url.rsplit('/').next().unwrap_or("postgres");
    path.split('?').next().unwrap_or("postgres").to_string()
}

/// Runs the checker; returns its exit code, its JSON summary and its stderr.
async fn checker(direct: &str, sidecars: &[String], extra: &[&str]) -> (i32, Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/cache_checker.py");
    let script = script.to_string_lossy().into_owned();
    let mut args = vec![script.as_str(), "--direct", direct];
    for url in sidecars {
        args.extend(["--sidecar", url.as_str()]);
    }
    args.extend(extra);
    let out = run("python3", &args).await;
    let (stdout, stderr) = text(&out);
    let summary = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("checker printed no JSON ({e}):\n{stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), summary, stderr)
}

async fn two_sidecars() -> (Proxy, Proxy, Vec<String>) {
    let (a, b) = (Proxy::with(|_| {}).await, Proxy::with(|_| {}).await);
    let urls = vec![
        a.url("postgres", &database()),
        b.url("postgres", &database()),
    ];
    (a, b, urls)
}

async fn drop_table(url: &str, table: &str) {
    let client = connect(url).await;
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .expect("drop the checker's table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_passes_on_two_plain_sidecars() {
    let (a, b, urls) = two_sidecars().await;
    let table = unique("cache_checker_ok");
    let args = ["--duration", "5", "--table", &table];
    let (code, summary, stderr) = checker(&database_url(), &urls, &args).await;
    assert_eq!(code, 0, "checker failed: {summary:#}\n{stderr}");
    assert_eq!(summary["ok"], true, "{summary:#}");
    for sidecar in summary["sidecars"].as_array().expect("sidecars") {
        for protocol in ["simple", "extended", "binary"] {
            let reads = sidecar["reads_by_protocol"][protocol].as_u64().unwrap_or(0);
            assert!(reads > 0, "no {protocol} reads: {summary:#}");
        }
        assert!(sidecar["writes"].as_u64().unwrap_or(0) > 0, "{summary:#}");
        let seen = sidecar["visibility_ms"]["count"].as_u64().unwrap_or(0);
        assert!(seen > 0, "no direct write was watched: {summary:#}");
        assert!(
            sidecar["visibility_ms"]["p99"].as_f64().is_some(),
            "{summary:#}"
        );
    }
    assert!(
        summary["direct_writes"].as_u64().unwrap_or(0) > 0,
        "{summary:#}"
    );
    drop_table(&database_url(), &table).await;
    a.stop().await;
    b.stop().await;
}

/// `--inject-stale` makes some reads report an older version than was committed through
/// the same sidecar: rule (a) must catch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_fails_on_stale_reads() {
    let (a, b, urls) = two_sidecars().await;
    let table = unique("cache_checker_stale");
    let args = [
        "--duration",
        "3",
        "--table",
        &table,
        "--inject-stale",
        "0.05",
    ];
    let (code, summary, stderr) = checker(&database_url(), &urls, &args).await;
    assert_eq!(code, 1, "stale reads went unnoticed: {summary:#}\n{stderr}");
    assert_eq!(
        summary["first_violations"][0]["kind"], "stale_read",
        "{summary:#}"
    );
    assert!(stderr.contains("cache_checker: FAILED"), "{stderr}");
    drop_table(&database_url(), &table).await;
    a.stop().await;
    b.stop().await;
}

/// A "sidecar" whose reads come from another database never shows the direct writes:
/// rule (b) must name it after the bound, and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_fails_when_direct_writes_stay_invisible() {
    let (a, b, mut urls) = two_sidecars().await;
    let table = unique("cache_checker_blind");
    let other_db = unique("cache_checker_db");
    let admin = connect(&database_url()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {other_db}"))
        .await
        .expect("create the other database");
    let url = database_url();
    let elsewhere = format!("{}/{other_db}", &url[..url.rfind('/').expect("a URL path")]);
    connect(&elsewhere)
        .await
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, version bigint NOT NULL);
             INSERT INTO {table} SELECT g, 0 FROM generate_series(1, 16) g"
        ))
        .await
        .expect("the blind sidecar's table");
    urls[1] = b.url("postgres", &other_db);
    let args = ["--duration", "3", "--table", &table, "--bound-ms", "200"];
    let (code, summary, stderr) = checker(&database_url(), &urls, &args).await;
    assert_eq!(
        code, 1,
        "invisible writes went unnoticed: {summary:#}\n{stderr}"
    );
    assert_eq!(summary["sidecars"][0]["violations"], 0, "{summary:#}");
    assert_eq!(
        summary["first_violations"][0]["kind"], "not_visible",
        "{summary:#}"
    );
    assert_eq!(summary["first_violations"][0]["sidecar"], 1, "{summary:#}");
    drop_table(&database_url(), &table).await;
    a.stop().await;
    b.stop().await;
    admin
        .batch_execute(&format!("DROP DATABASE {other_db} WITH (FORCE)"))
        .await
        .expect("drop the other database");
}
