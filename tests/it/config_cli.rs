//! The command line and configuration file: check-config, one-line errors naming the
//! key, overrides, and reload keeping the old configuration on a bad file.

use std::process::Command;

use pgsidecar::config::Config;
use pgsidecar::{App, ConfigSource};

fn pgsidecar(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pgsidecar"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("PGSIDECAR_UPSTREAM")
        .output()
        .expect("run pgsidecar")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("pgsidecar-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_prints_effective_settings_and_names_bad_keys() {
    let good = temp_file(
        "good.toml",
        "pool_size = 7\n[databases.app]\npool_mode = \"session\"\n",
    );
    let out = pgsidecar(&[
        "check-config",
        "--config",
        good.to_str().unwrap(),
        "--listen",
        "127.0.0.1:7000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool_size = 7"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:7000\""), "{text}");
    assert!(text.contains("checkout_timeout = \"5s\""), "{text}");
    assert!(text.contains("[databases.app]"), "{text}");

    let bad = temp_file("bad.toml", "pool_size = 7\npool_sise = 8\n");
    let out = pgsidecar(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(":2: pool_sise: unknown field"), "{err}");

    let bad = temp_file("badval.toml", "server_idle_timeout = \"often\"\n");
    let out = pgsidecar(&["check-config", "--config", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("server_idle_timeout"), "{err}");

    let out = pgsidecar(&["check-config", "--pool-size", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "pgsidecar: config key pool_size: must be at least 1"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_pgsidecar"))
        .args(["check-config"])
        .env("DATABASE_URL", "postgres://app@db.internal:6543/shop")
        .env_remove("PGSIDECAR_UPSTREAM")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("postgres://app@db.internal:6543/shop"));
    let _ = std::fs::remove_file(good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_new_sizes_and_keeps_old_config_on_error() {
    let upstream = crate::common::database_url();
    let text = |size: usize| {
        format!("listen = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nauth_type = \"trust\"\npool_size = {size}\n")
    };
    let path = temp_file("reload.toml", &text(3));
    let source = ConfigSource {
        path: Some(path.clone()),
        ..ConfigSource::default()
    };
    let config = Config::load(Some(&path), &source.overrides).unwrap();
    let app = App::start(config, source).await.unwrap();
    let url = format!("postgres://postgres@{}/postgres", app.local_addr());
    let client = crate::common::connect(&url).await;
    client.simple_query("SELECT 1").await.unwrap();

    std::fs::write(&path, text(9)).unwrap();
    app.shared().reload().unwrap();
    let pool = app.shared().pool("postgres", "postgres");
    assert_eq!(pool.params().settings.size, 9);
    assert_eq!(app.shared().config().pool_size, 9);

    std::fs::write(&path, "pool_size = \"many\"\n").unwrap();
    let err = app.shared().reload().unwrap_err().to_string();
    assert!(err.contains("pool_size"), "{err}");
    assert_eq!(app.shared().config().pool_size, 9, "old configuration kept");
    client.simple_query("SELECT 1").await.unwrap();
    app.force_shutdown();
    app.wait().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_the_store_schema_once() {
    let db = crate::store::TestDb::create().await;
    let run = || {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || pgsidecar(&["migrate", "--upstream", &url]))
    };
    let first = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("applied migration 0001"), "{stdout}");
    let second = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success());
    assert!(stdout.contains("up to date"), "{stdout}");
    let unreachable = tokio::task::spawn_blocking(|| {
        pgsidecar(&["migrate", "--upstream", "postgres://postgres@127.0.0.1:1/x"])
    })
    .await
    .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("migrate:"), "{stderr}");
}
