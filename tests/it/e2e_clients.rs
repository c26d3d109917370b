//! Real client programs end to end through the in-process proxy: psql (a script with
//! transactions and `\copy`), pgbench (simple and extended protocol, 64 clients on 8
//! servers) and psycopg 3 (`tests/e2e/psycopg_check.py`).

use std::path::Path;
use std::process::Output;

use tokio::process::Command;
use tokio_postgres::Client;

use crate::common::{connect, database_url, unique, Proxy};

const BENCH_DB: &str = "pgsidecar_bench";
const BENCH_CLIENTS: u64 = 64;
/// Advisory lock key serialising users of the bench database.
const BENCH_LOCK: i64 = 0x7067_7369_6465;
/// Transactions per pgbench client (`-t`).
const BENCH_TX: u64 = 50;

/// Runs a client program to completion; stdout and stderr are captured.
pub(crate) async fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        // Only our flags decide where the client goes.
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGDATABASE")
        .env_remove("PGUSER")
        .env_remove("PGOPTIONS")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Output as text, for assertions and failure messages.
pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The part of the psql session sent with `-f`: psql sends each statement on its own.
fn psql_script(table: &str, copy_out: &Path, copy_in: &Path) -> String {
    let (out, inp) = (copy_out.display(), copy_in.display());
    format!(
        "BEGIN;\n\
         DELETE FROM {table};\n\
         ROLLBACK;\n\
         \\copy (SELECT * FROM {table} ORDER BY id) TO '{out}' WITH (FORMAT csv)\n\
         \\copy {table} FROM '{inp}' WITH (FORMAT csv)\n\
         SELECT id, v FROM {table} ORDER BY id;\n\
         DROP TABLE {table};\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_psql_script_with_transactions_and_copy() {
    let proxy = Proxy::with(|_| {}).await;
    let table = unique("e2e_psql");
    let dir = std::env::temp_dir().join(&table);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (script, copy_out, copy_in) = (dir.join("s.sql"), dir.join("out.csv"), dir.join("in.csv"));
    std::fs::write(&copy_in, "4,four\n5,\"fi,ve\"\n").expect("write copy input");
    std::fs::write(&script, psql_script(&table, &copy_out, &copy_in)).expect("write script");

    let port = proxy.port().to_string();
    let create = format!("CREATE TABLE {table} (id int PRIMARY KEY, v text)");
    // One Query message holding a whole transaction.
    let transaction = format!(
        "BEGIN; INSERT INTO {table} VALUES (1, 'one'), (2, 'two'), (3, 'three'); \
         UPDATE {table} SET v = upper(v) WHERE id = 2; COMMIT"
    );
    let script = script.to_string_lossy();
    let connection = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        "postgres",
    ];
    let mut args = vec!["-X", "-v", "ON_ERROR_STOP=1", "-At"];
    args.extend(connection);
    args.extend(["-c", &create, "-c", &transaction, "-f", &script]);
    let out = run("psql", &args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "psql failed: {stdout}{stderr}");
    // psql 15 prints every tag of the one-message transaction; older ones only the last.
    let transaction_tags = ["BEGIN\nINSERT 0 3\nUPDATE 1\nCOMMIT\n", "COMMIT\n"];
    let rest = "BEGIN\nDELETE 3\nROLLBACK\nCOPY 3\nCOPY 2\n\
                1|one\n2|TWO\n3|three\n4|four\n5|fi,ve\nDROP TABLE\n";
    let matches = |tags: &&str| stdout == format!("CREATE TABLE\n{tags}{rest}");
    assert!(
        transaction_tags.iter().any(matches),
        "stdout:\n{stdout}stderr: {stderr}"
    );
    let copied = std::fs::read_to_string(&copy_out).expect("\\copy wrote its file");
    assert_eq!(copied, "1,one\n2,TWO\n3,three\n");
    let _ = std::fs::remove_dir_all(&dir);
    proxy.stop().await;
}

/// Creates the bench database directly on the server (if absent) and loads it at scale 1.
/// Returns the direct connection holding an advisory lock that keeps two test runs (say,
/// two engineers' `cargo test`) from initialising or benchmarking the database at once.
async fn init_bench_db() -> Client {
    let admin = connect(&database_url()).await;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&BENCH_LOCK])
        .await
        .expect("bench lock");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&BENCH_DB])
        .await
        .expect("look up bench database")
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {BENCH_DB}"))
            .await
            .expect("create bench database");
    }
    let url: tokio_postgres::Config = database_url().parse().expect("test database URL");
    let host = match url.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = url.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = url.get_user().unwrap_or("postgres").to_string();
    let out = run(
        "pgbench",
        &[
            "-i", "-s", "1", "-q", "-h", &host, "-p", &port, "-U", &user, BENCH_DB,
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "pgbench -i failed: {stdout}{stderr}");
    admin
}

/// Runs pgbench through the proxy in `mode`; returns the transactions processed.
async fn bench(proxy: &Proxy, mode: &str) -> u64 {
    let (port, clients, tx) = (
        proxy.port().to_string(),
        BENCH_CLIENTS.to_string(),
        BENCH_TX.to_string(),
    );
    let out = run(
        "pgbench",
        &[
            "-M",
            mode,
            "-c",
            &clients,
            "-j",
            "2",
            "-t",
            &tx,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            BENCH_DB,
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "pgbench -M {mode} failed: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("number of failed transactions: 0"),
        "pgbench -M {mode}: {stdout}"
    );
    let processed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no transaction count in: {stdout}"));
    let tps = stdout.lines().find(|l| l.starts_with("tps")).unwrap_or("");
    println!("pgbench -M {mode}: {processed} transactions; {tps}");
    processed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_pgbench_simple_extended_and_prepared() {
    let _lock = init_bench_db().await;
    let proxy = Proxy::with(|c| c.pool_size = 8).await;
    // prepared: named statements, renamed and prepared again on each server a client
    // lands on (and pgbench prepares synchronously, answered without a server).
    for mode in ["simple", "extended", "prepared"] {
        let processed = bench(&proxy, mode).await;
        assert_eq!(
            processed,
            BENCH_CLIENTS * BENCH_TX,
            "every pgbench transaction in -M {mode} ran"
        );
    }
    let pool = proxy.app.shared().pool(BENCH_DB, "postgres");
    let open = pool
        .counters
        .open
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        open <= 8,
        "64 clients never opened more than pool_size servers: {open}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_psycopg3() {
    let proxy = Proxy::with(|c| c.pool_size = 4).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/psycopg_check.py");
    let port = proxy.port().to_string();
    let out = run("python3", &[&script.to_string_lossy(), &port, "4"]).await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "psycopg_check.py failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert_eq!(stdout.trim_end(), "OK", "stderr: {stderr}");
    proxy.stop().await;
}

/// psycopg's `cursor.execute("copy t from stdin")` raises, and the client then closes
/// (Terminate) with the server in COPY IN: the proxy fails the COPY, so the only server
/// (pool_size 1) serves the next connection and holds no lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_psycopg_quits_during_copy_in() {
    let proxy = Proxy::with(|c| {
        c.pool_size = 1;
        c.checkout_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let table = unique("e2e_copy_quit");
    connect(&database_url())
        .await
        .batch_execute(&format!("CREATE TABLE {table} (a int)"))
        .await
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/psycopg_copy_quit.py");
    let port = proxy.port().to_string();
    let out = run("python3", &[&script.to_string_lossy(), &port, &table]).await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "psycopg_copy_quit.py failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert_eq!(stdout.trim_end(), "OK", "stderr: {stderr}");
    proxy.stop().await;
}
