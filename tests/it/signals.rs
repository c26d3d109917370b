//! The binary's signal handling: SIGTERM drains and exits 0, a second signal ends at
//! once, SIGHUP reloads and keeps the old configuration when the file is bad.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::cluster::free_port;
use crate::common::database_url;

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pgsidecar"))
        .args(["--config", config.to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .env_remove("PGSIDECAR_UPSTREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgsidecar")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn write_config(port: u16, extra: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("pgsidecar-signals-{port}.toml"));
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\nupstream = \"{}\"\nauth_type = \"trust\"\n{extra}",
        database_url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn wait_connect(url: &str) -> tokio_postgres::Client {
    for _ in 0..100 {
        if let Ok(c) = crate::common::try_connect(url).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("proxy did not come up at {url}");
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "pgsidecar did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_sighup_reloads() {
    let port = free_port();
    let path = write_config(port, "pool_size = 2\n");
    let mut child = spawn(&path);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let client = wait_connect(&url).await;

    // A bad file on SIGHUP: logged, old configuration kept, clients unaffected.
    std::fs::write(&path, "pool_size = \"lots\"\n").unwrap();
    signal(&child, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.simple_query("SELECT 1").await.unwrap();
    assert!(child.try_wait().unwrap().is_none(), "still running");

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("reload failed"), "{log}");
    assert!(log.contains("pool_size"), "{log}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_ends_at_once() {
    let port = free_port();
    let path = write_config(port, "shutdown_timeout = \"60s\"\n");
    let mut child = spawn(&path);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let client = wait_connect(&url).await;
    client.batch_execute("BEGIN").await.unwrap();
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "waits for the open transaction"
    );
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_file(path);
}
