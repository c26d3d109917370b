//! A real Prometheus scrapes a live proxy under a small workload and evaluates every
//! dashboard panel's expression (each must parse and return data, the pending ones
//! excepted) and every alert rule (each must parse and evaluate without error);
//! `promtool` checks the rules, runs their unit tests, and lints the live `/metrics`.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::dashboards::{dashboards, exprs, is_pending, panels, sample_names, substitute};
use super::{repo, run, tool, yaml};
use crate::common::http::Http;
use crate::common::{direct, unique, Proxy};

/// How long the workload runs while Prometheus scrapes every second.
const WORKLOAD: Duration = Duration::from_secs(6);

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let Some(promtool) = tool("promtool", "promtool_checks_the_rules") else {
        return;
    };
    let rules = repo("prometheus/alerts.yml");
    let (ok, out) = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules));
    assert!(ok, "promtool check rules: {out}");
    let tests = repo("prometheus/alerts_test.yml");
    let (ok, out) = run(Command::new(&promtool).args(["test", "rules"]).arg(&tests));
    assert!(ok && out.contains("SUCCESS"), "promtool test rules: {out}");
    // Every alert has unit tests: one that fires it, and at least one that does not.
    let text = std::fs::read_to_string(&tests).expect("alerts_test.yml");
    for alert in alert_rules().iter().map(|r| r["alert"].as_str().unwrap()) {
        let cases = text.matches(&format!("alertname: {alert}\n")).count();
        assert!(cases >= 2, "{alert}: {cases} test cases in alerts_test.yml");
    }
}

/// The rules of `prometheus/alerts.yml`, each with summary, description and runbook.
fn alert_rules() -> Vec<Value> {
    let doc = yaml("prometheus/alerts.yml").remove(0);
    let rules: Vec<Value> = doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect();
    let runbook = std::fs::read_to_string(repo("docs/OPERATIONS.md")).expect("OPERATIONS.md");
    for rule in &rules {
        let name = rule["alert"].as_str().expect("only alerting rules");
        for key in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][key].is_string(), "{name}: no {key}");
        }
        let anchor = format!("docs/OPERATIONS.md#{}", name.to_lowercase());
        assert_eq!(rule["annotations"]["runbook_url"], anchor.as_str());
        assert!(
            runbook.contains(&format!("### {name}\n")),
            "{name}: no runbook section"
        );
    }
    rules
}

/// A Prometheus child process with its own data directory, removed on drop.
struct Prometheus {
    child: std::process::Child,
    dir: std::path::PathBuf,
    api: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    fn start(binary: &std::path::Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(unique("pgsidecar-prometheus"));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rules = repo("prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: pgsidecar\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let api = format!("http://127.0.0.1:{port}");
        Prometheus { child, dir, api }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: `Ok(result)` or `Err(Prometheus' error)`.
    async fn query(&self, http: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query", self.api);
        let response = http.get(url).query(&[("query", expr)]).send().await;
        let body: Value = match response {
            Ok(r) => r.json().await.map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        match body["status"].as_str() {
            Some("success") => Ok(body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// Waits until `expr` returns data (or panics with the log after `limit`).
    async fn wait_for(&self, http: &reqwest::Client, expr: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if matches!(self.query(http, expr).await, Ok(r) if !r.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "Prometheus: no data for {expr} in {limit:?}\n{}",
            self.log()
        );
    }
}

/// Reads, writes, a slow statement, errors and a pinning statement, for `WORKLOAD`.
async fn workload(proxy: &Proxy, table: &str) {
    let client = proxy.client().await;
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < WORKLOAD {
        i += 1;
        let insert = format!("INSERT INTO {table} VALUES ({i})");
        client.batch_execute(&insert).await.expect("insert");
        let select = format!("SELECT count(*) FROM {table} WHERE a > $1");
        client.query(&select, &[&0i32]).await.expect("select");
        client
            .batch_execute("SELECT pg_sleep(0.03)")
            .await
            .expect("sleep");
        let missing = format!("SELECT no_such_column FROM {table}");
        assert!(client.batch_execute(&missing).await.is_err());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_evaluates_every_panel_and_alert() {
    let test = "a_real_prometheus_evaluates_every_panel_and_alert";
    let (Some(binary), Some(promtool)) = (tool("prometheus", test), tool("promtool", test)) else {
        return;
    };
    let rules = alert_rules();
    let table = unique("prom");
    let ddl = format!("CREATE TABLE {table} (a int)");
    direct().await.batch_execute(&ddl).await.expect("create");
    let proxy = Proxy::with(|c| {
        c.admin_listen = "127.0.0.1:0".into();
        c.slow_warning_ms = 20;
        c.slow_critical_ms = 60_000;
    })
    .await;
    let admin = proxy.app.admin_addr().expect("admin server");
    let prometheus = Prometheus::start(&binary, admin);
    let http = reqwest::Client::new();
    let settle = Duration::from_secs(30);
    // Scraping first, so that the workload's counters rise between scrapes.
    prometheus
        .wait_for(&http, "up{job=\"pgsidecar\"} == 1", settle)
        .await;
    workload(&proxy, &table).await;
    let traffic = "increase(pgsidecar_queries_total{outcome=\"error\"}[1m]) > 0";
    prometheus.wait_for(&http, traffic, settle).await;
    // Two more scrapes after the traffic, so every rate() has a recent pair.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, text) = Http::new(&proxy).text("/metrics").await;
    let live: HashSet<String> = sample_names(&text);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, d) in dashboards() {
        for p in panels(&d).into_iter().filter(|p| p["type"] != "row") {
            let pending = is_pending(p, &live);
            for expr in exprs(p) {
                checked += 1;
                let title = p["title"].as_str().unwrap_or_default();
                match prometheus.query(&http, &substitute(&expr)).await {
                    Err(e) => problems.push(format!("{name} {title:?}: {e}\n  {expr}")),
                    Ok(r) if r.is_empty() && !pending => {
                        problems.push(format!("{name} {title:?}: no data\n  {expr}"))
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    for rule in &rules {
        let expr = rule["expr"].as_str().expect("expr");
        if let Err(e) = prometheus.query(&http, expr).await {
            problems.push(format!("alert {}: {e}", rule["alert"]));
        }
    }
    assert!(checked >= 40, "only {checked} panel expressions");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    check_rules_loaded(&prometheus, &http, rules.len()).await;

    let mut lint = Command::new(&promtool);
    lint.args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = lint.stderr(Stdio::piped()).spawn().expect("promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("promtool check metrics");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {findings}"
    );

    drop(prometheus);
    proxy.stop().await;
    let drop = format!("DROP TABLE {table}");
    direct().await.batch_execute(&drop).await.expect("drop");
}

/// Prometheus loaded every rule and has evaluated each without error.
async fn check_rules_loaded(prometheus: &Prometheus, http: &reqwest::Client, count: usize) {
    let url = format!("{}/api/v1/rules", prometheus.api);
    let start = Instant::now();
    loop {
        let body: Value = http
            .get(&url)
            .send()
            .await
            .expect("rules")
            .json()
            .await
            .expect("json");
        let rules: Vec<&Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let healthy = rules.iter().filter(|r| r["health"] == "ok").count();
        if rules.len() == count && healthy == count {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "rules not all healthy: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
