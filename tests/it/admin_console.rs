//! The SQL admin console (database `pgsidecar` or `pgbouncer`): every SHOW through real
//! psql with PgBouncer's column names, admin-only access (42501), errors that keep the
//! session, PAUSE/RESUME holding and releasing queries, RELOAD errors, SHUTDOWN.

use std::time::Duration;

use pgsidecar::config::{Config, Overrides};
use pgsidecar::{App, ConfigSource};
use tokio::process::Command;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::{connect, database_url, direct, sqlstate, try_connect, unique, Proxy};

/// psql's unaligned output: the header and the rows, split at `|`.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// The value of `column` in every row.
    fn column(&self, column: &str) -> Vec<&str> {
        let i = self.index(column);
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }

    fn index(&self, column: &str) -> usize {
        let found = self.header.iter().position(|h| h == column);
        found.unwrap_or_else(|| panic!("no column {column} in {:?}", self.header))
    }

    /// The first row whose `column` is `value`.
    fn row(&self, column: &str, value: &str) -> Vec<String> {
        let i = self.index(column);
        let found = self.rows.iter().find(|r| r[i] == value);
        found
            .cloned()
            .unwrap_or_else(|| panic!("no row with {column}={value}: {:?}", self.rows))
    }

    fn get(&self, row: &[String], column: &str) -> String {
        row[self.index(column)].clone()
    }

    fn num(&self, row: &[String], column: &str) -> i64 {
        let v = self.get(row, column);
        v.parse()
            .unwrap_or_else(|_| panic!("{column}={v:?} is not a number"))
    }
}

/// Runs `psql -X -A -F '|'` against the console, failing the test on a psql error.
async fn psql(proxy: &Proxy, database: &str, sql: &str) -> Table {
    let out = Command::new("psql")
        .args(["-X", "-A", "-F", "|", "-P", "footer=off", "-h", "127.0.0.1"])
        .args(["-p", &proxy.port().to_string(), "-U", "postgres", database])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_remove("PGOPTIONS")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql -c {sql:?}: {stdout}{stderr}");
    let mut lines = stdout
        .lines()
        .map(|l| l.split('|').map(String::from).collect());
    Table {
        header: lines.next().unwrap_or_default(),
        rows: lines.collect(),
    }
}

fn admin_proxy() -> impl FnOnce(&mut Config) {
    |c| c.admin_users = vec!["postgres".into()]
}

async fn console(proxy: &Proxy) -> Client {
    connect(&proxy.url("postgres", "pgsidecar")).await
}

/// Runs a simple query, failing the test on an error.
async fn simple_ok(client: &Client, sql: &str) -> Vec<SimpleQueryMessage> {
    let msgs = client.simple_query(sql).await;
    msgs.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The message of the server's (here, the console's) error.
fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default()
}

const POOLS: &str = "database|user|cl_active|cl_waiting|sv_active|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode|paused";
const CLIENTS: &str =
    "type|user|database|state|addr|port|connect_time|tls|application_name|id|server_pid";
const SERVERS: &str = "type|user|database|state|addr|port|connect_time|request_time|remote_pid|tls|application_name|id|client_id";
const DATABASES: &str = "name|host|port|database|pool_size|min_pool_size|server_lifetime|pool_mode|current_connections|current_client_connections|paused";
const STATS: &str = "database|total_server_assignment_count|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|total_wait_time|avg_server_assignment_count|avg_xact_count|avg_query_count|avg_recv|avg_sent|avg_xact_time|avg_query_time|avg_wait_time|p50_query_time|p95_query_time|p99_query_time";
const TOTALS: &str = "database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time";
const QUERIES: &str = "fingerprint|database|user|command|calls|errors|rows|total_ms|mean_ms|p50_ms|p95_ms|p99_ms|query";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_show_through_psql() {
    let proxy = Proxy::with(admin_proxy()).await;
    let app_name = unique("console_app");
    let client = connect(&format!(
        "{}?application_name={app_name}",
        proxy.url("postgres", "postgres")
    ))
    .await;
    for i in 0..7 {
        simple_ok(&client, &format!("SELECT {i} AS console_probe")).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    pools_and_clients(&proxy, &app_name).await;
    servers_and_databases(&proxy).await;
    stats_and_queries(&proxy).await;
    config_lists_and_version(&proxy).await;
    proxy.stop().await;
}

async fn pools_and_clients(proxy: &Proxy, app_name: &str) {
    let pools = psql(proxy, "pgsidecar", "SHOW POOLS").await;
    assert_eq!(pools.header.join("|"), POOLS);
    let pool = pools.row("database", "postgres");
    assert_eq!(pools.get(&pool, "user"), "postgres");
    assert_eq!(pools.num(&pool, "cl_active"), 1);
    assert_eq!(pools.num(&pool, "cl_waiting"), 0);
    assert_eq!(pools.num(&pool, "sv_active"), 0);
    assert!(pools.num(&pool, "sv_idle") + pools.num(&pool, "sv_used") >= 1);
    assert_eq!(pools.get(&pool, "pool_mode"), "transaction");
    assert_eq!(pools.num(&pool, "paused"), 0);

    let clients = psql(proxy, "pgsidecar", "show clients;").await;
    assert_eq!(clients.header.join("|"), CLIENTS);
    let me = clients.row("application_name", app_name);
    assert_eq!(clients.get(&me, "database"), "postgres");
    assert_eq!(clients.get(&me, "state"), "idle");
    assert_eq!(clients.get(&me, "addr"), "127.0.0.1");
    assert!(clients.get(&me, "connect_time").ends_with(" UTC"));
    assert!(
        clients.column("database").contains(&"pgsidecar"),
        "psql itself"
    );
}

async fn servers_and_databases(proxy: &Proxy) {
    let servers = psql(proxy, "pgsidecar", "SHOW SERVERS").await;
    assert_eq!(servers.header.join("|"), SERVERS);
    let server = servers.row("database", "postgres");
    assert!(["idle", "used"].contains(&servers.get(&server, "state").as_str()));
    let pid = servers.num(&server, "remote_pid") as i32;
    let backends = direct().await;
    let found = backends
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap();
    assert_eq!(found.get::<_, i64>(0), 1, "remote_pid is a real backend");

    let databases = psql(proxy, "pgsidecar", "SHOW DATABASES").await;
    assert_eq!(databases.header.join("|"), DATABASES);
    let db = databases.row("name", "postgres");
    assert_eq!(databases.num(&db, "pool_size"), 4);
    assert_eq!(databases.get(&db, "database"), "postgres");
    assert_eq!(databases.num(&db, "current_client_connections"), 1);
}

async fn stats_and_queries(proxy: &Proxy) {
    let stats = psql(proxy, "pgsidecar", "SHOW STATS").await;
    assert_eq!(stats.header.join("|"), STATS);
    let db = stats.row("database", "postgres");
    assert!(stats.num(&db, "total_query_count") >= 7);
    assert!(stats.num(&db, "total_xact_count") >= 7);
    assert!(stats.num(&db, "total_query_time") > 0);
    assert!(stats.num(&db, "avg_query_time") > 0);
    assert!(stats.num(&db, "p99_query_time") >= stats.num(&db, "p50_query_time"));

    let totals = psql(proxy, "pgsidecar", "SHOW STATS_TOTALS").await;
    assert_eq!(totals.header.join("|"), TOTALS);
    let db = totals.row("database", "postgres");
    assert!(totals.num(&db, "query_count") >= 7);

    let queries = psql(proxy, "pgsidecar", "SHOW QUERIES").await;
    assert_eq!(queries.header.join("|"), QUERIES);
    let i = queries.index("query");
    let probe = queries.rows.iter().find(|r| r[i].contains("console_probe"));
    let probe = probe.unwrap_or_else(|| panic!("probe shape in {:?}", queries.rows));
    assert_eq!(queries.num(probe, "calls"), 7);
    assert_eq!(queries.num(probe, "rows"), 7);
    assert_eq!(queries.get(probe, "command"), "SELECT");
    let fingerprint = queries.get(probe, "fingerprint");
    assert!(fingerprint.len() == 16 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    let p99: f64 = queries.get(probe, "p99_ms").parse().unwrap();
    assert!(p99 > 0.0);
}

async fn config_lists_and_version(proxy: &Proxy) {
    let lists = psql(proxy, "pgsidecar", "SHOW LISTS").await;
    assert_eq!(lists.header.join("|"), "list|items");
    assert_eq!(lists.num(&lists.row("list", "pools"), "items"), 1);
    assert_eq!(lists.num(&lists.row("list", "used_clients"), "items"), 2);

    let config = psql(proxy, "pgsidecar", "SHOW CONFIG").await;
    assert_eq!(config.header.join("|"), "key|value|default|changeable");
    let row = config.row("key", "pool_size");
    assert_eq!(
        (config.get(&row, "value"), config.get(&row, "default")),
        ("4".into(), "20".into())
    );
    assert_eq!(
        config.get(&config.row("key", "admin_users"), "value"),
        r#"["postgres"]"#
    );
    assert_eq!(config.get(&config.row("key", "listen"), "changeable"), "no");

    let version = psql(proxy, "pgsidecar", "SHOW VERSION").await;
    assert_eq!(version.header, vec!["version"]);
    assert!(
        version.rows[0][0].starts_with("pgsidecar "),
        "{:?}",
        version.rows
    );
}

const SLOW: &str =
    "id|at|database|username|fingerprint|level|duration_ms|application_name|sidecar|query";
const ALERTS: &str =
    "id|at|database|username|fingerprint|level|consecutive|duration_ms|sidecar|query";
const JOBS: &str =
    "id|kind|status|attempts|max_attempts|run_at|claimed_by|created_at|finished_at|error";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_alerts_and_jobs_through_psql() {
    let proxy = Proxy::with(|c| {
        c.admin_users = vec!["postgres".into()];
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 2;
    })
    .await;
    let client = proxy.client().await;
    for i in 0..3 {
        simple_ok(&client, &format!("SELECT {i} AS slow_probe")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let slow = psql(&proxy, "pgsidecar", "SHOW SLOW").await;
    assert_eq!(slow.header.join("|"), SLOW);
    let probes: Vec<&Vec<String>> = (slow.rows.iter())
        .filter(|r| slow.get(r, "query").contains("slow_probe"))
        .collect();
    assert_eq!(probes.len(), 3, "{:?}", slow.rows);
    assert!(probes.iter().all(|r| slow.get(r, "level") == "warning"));
    let alerts = psql(&proxy, "pgsidecar", "SHOW ALERTS").await;
    assert_eq!(alerts.header.join("|"), ALERTS);
    assert_eq!(alerts.rows.len(), 1, "{:?}", alerts.rows);
    assert_eq!(alerts.num(&alerts.rows[0], "consecutive"), 2);
    // No store: no jobs, but the same columns.
    let jobs = psql(&proxy, "pgbouncer", "SHOW JOBS").await;
    assert_eq!(jobs.header.join("|"), JOBS);
    assert!(jobs.rows.is_empty(), "{:?}", jobs.rows);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_database_and_simple_protocol_only() {
    let proxy = Proxy::with(admin_proxy()).await;
    let version = psql(&proxy, "pgbouncer", "show version").await;
    assert!(version.rows[0][0].starts_with("pgsidecar "));
    let console = connect(&proxy.url("postgres", "pgbouncer")).await;
    let err = console
        .query("SHOW POOLS", &[])
        .await
        .expect_err("extended protocol");
    assert_eq!(sqlstate(&err), "08P01", "{err}");
    let rows = simple_ok(&console, "SHOW VERSION; SHOW CLIENTS").await;
    let data = rows
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)));
    assert!(data.count() >= 2, "both statements answered");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admin_gets_42501_and_unknown_commands_42601() {
    let proxy = Proxy::with(|c| c.admin_users = vec!["somebody_else".into()]).await;
    let Err(err) = try_connect(&proxy.url("postgres", "pgsidecar")).await else {
        panic!("a user not in admin_users got in");
    };
    assert_eq!(sqlstate(&err), "42501", "{err}");
    assert!(message(&err).contains("admin_users"), "{err:?}");
    proxy.stop().await;

    let proxy = Proxy::with(|c| {
        c.admin_users = vec!["postgres".into()];
        c.stats = false;
    })
    .await;
    let console = console(&proxy).await;
    let err = console
        .simple_query("SHOW QUERIES")
        .await
        .expect_err("no stats");
    assert_eq!(sqlstate(&err), "55000", "{err}");
    simple_ok(&console, "SHOW STATS; SHOW HELP").await;
    for bad in ["SELECT 1", "SHOW NONSENSE", "PAUSE a b c"] {
        let err = console.simple_query(bad).await.expect_err(bad);
        assert_eq!(sqlstate(&err), "42601", "{bad}: {err}");
    }
    let err = console
        .simple_query("RESUME")
        .await
        .expect_err("nothing paused");
    assert_eq!(sqlstate(&err), "55000", "{err}");
    let err = console
        .simple_query("PAUSE no_such_db")
        .await
        .expect_err("unknown db");
    assert_eq!(sqlstate(&err), "3D000", "{err}");
    simple_ok(&console, "SHOW VERSION").await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_queries_until_resume() {
    let proxy = Proxy::with(|c| {
        c.admin_users = vec!["postgres".into()];
        c.checkout_timeout = Duration::from_secs(20);
    })
    .await;
    let client = proxy.client().await;
    simple_ok(&client, "SELECT 1").await;
    let console = console(&proxy).await;
    simple_ok(&console, "PAUSE postgres").await;

    let held = tokio::spawn(async move { client.simple_query("SELECT 2").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "the query waits while paused");
    let pools = psql(&proxy, "pgsidecar", "SHOW POOLS").await;
    let pool = pools.row("database", "postgres");
    assert_eq!(pools.num(&pool, "paused"), 1);
    assert_eq!(pools.num(&pool, "cl_waiting"), 1);

    simple_ok(&console, "resume postgres;").await;
    let done = tokio::time::timeout(Duration::from_secs(5), held).await;
    done.expect("finishes after RESUME")
        .unwrap()
        .expect("query ok");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_shows_a_bad_file_and_applies_a_good_one() {
    let dir = std::env::temp_dir().join(unique("console_reload"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let good = |size: u32| {
        format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"{}\"\nauth_type = \"trust\"\n\
             admin_users = [\"postgres\"]\npool_size = {size}\n",
            database_url()
        )
    };
    std::fs::write(&path, good(3)).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).expect("config loads");
    let source = ConfigSource {
        path: Some(path.clone()),
        overrides: Overrides::default(),
    };
    let app = App::start(config, source).await.expect("starts");
    let proxy = Proxy {
        addr: app.local_addr(),
        app,
    };
    let console = console(&proxy).await;

    std::fs::write(&path, "pool_sise = 3\n").unwrap();
    let err = console.simple_query("RELOAD").await.expect_err("bad file");
    assert_eq!(sqlstate(&err), "F0000", "{err}");
    assert!(message(&err).contains("pool_sise"), "{err:?}");

    std::fs::write(&path, good(7)).unwrap();
    simple_ok(&console, "RELOAD").await;
    let config = psql(&proxy, "pgsidecar", "SHOW CONFIG").await;
    assert_eq!(config.get(&config.row("key", "pool_size"), "value"), "7");
    let _ = std::fs::remove_dir_all(&dir);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting() {
    let proxy = Proxy::with(admin_proxy()).await;
    let client = proxy.client().await;
    simple_ok(&client, "SELECT 1").await;
    let console = console(&proxy).await;
    simple_ok(&console, "SHUTDOWN").await;

    let Proxy { app, addr } = proxy;
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "listener closed after SHUTDOWN");
    let err = client
        .simple_query("SELECT 1")
        .await
        .expect_err("idle client closed");
    assert!(err.is_closed() || sqlstate(&err) == "57P01", "{err}");
    tokio::time::timeout(Duration::from_secs(10), app.wait())
        .await
        .expect("drain completes");
}
