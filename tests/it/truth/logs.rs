//! Text logs written to a file: no colour codes, one line per event (a statement's
//! newlines escaped), and one `slow statement` line per fingerprint per interval with
//! the rest counted.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::cluster::free_port;
use crate::common::{database_url, try_connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_gets_plain_single_lines_and_sampled_slow_statements() {
    let port = free_port();
    let dir = std::env::temp_dir();
    let config = dir.join(format!("pgsidecar-truth-logs-{port}.toml"));
    let log = dir.join(format!("pgsidecar-truth-logs-{port}.log"));
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"{}\"\n\
         auth_type = \"trust\"\nstore = false\nslow_warning_ms = 0\nslow_critical_ms = 60000\n\
         alert_consecutive = 1000\nexplain_warning_interval = \"0s\"\nslow_log_interval = \"1h\"\n",
        database_url()
    );
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgsidecar"))
        .args(["--config", config.to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .env_remove("PGSIDECAR_UPSTREAM")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn pgsidecar");
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = try_connect(&url).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.expect("proxy up");
    for _ in 0..5 {
        client
            .simple_query("SELECT 1\n  AS truth_logs_one,\n  2 AS two")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        !written.contains('\u{1b}'),
        "no ANSI codes in a file:\n{written}"
    );
    let slow: Vec<&str> = written
        .lines()
        .filter(|l| l.contains("slow statement") && l.contains("truth_logs_one"))
        .collect();
    assert_eq!(
        slow.len(),
        1,
        "one line per fingerprint per interval:\n{written}"
    );
    assert!(
        slow[0].contains("\\n"),
        "newlines escaped on the line: {}",
        slow[0]
    );
    assert!(slow[0].contains("not_logged=0"), "{}", slow[0]);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&log);
}
