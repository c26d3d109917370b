//! The README's no-file command line, run as the real binary and used with psql: against a
//! trust server anyone the server knows gets in; against a scram-sha-256 server the app's
//! own password works, a wrong one gets PostgreSQL's words and a log line with the reason;
//! `--admin-users` and `--auth-type` work as flags.

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::common::cluster::{free_port, Cluster};
use crate::common::try_connect;
use crate::passthrough::{admin, scram_cluster};

/// `pgsidecar` started with `args` on a free port, its log in a file.
struct Running {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("pgsidecar-cli-{}-{port}.log", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_pgsidecar"))
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env_remove("PGSIDECAR_UPSTREAM")
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start pgsidecar");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "pgsidecar did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Running { child, port, log }
    }

    /// psql through the proxy; `password` goes in PGPASSWORD, psql never prompts.
    fn psql(&self, user: &str, db: &str, password: Option<&str>, sql: &str) -> Output {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-w", "-A", "-t", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .env("PGCONNECT_TIMEOUT", "10");
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.output().expect("run psql")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_line_against_a_trust_server() {
    let cluster = tokio::task::block_in_place(|| {
        Cluster::start(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            &[],
            None,
        )
    });
    let direct = try_connect(&cluster.url("postgres", None, "postgres"))
        .await
        .unwrap();
    direct
        .batch_execute("CREATE ROLE trusted LOGIN")
        .await
        .unwrap();
    let upstream = cluster.url("postgres", None, "postgres");
    let proxy = tokio::task::block_in_place(|| Running::start(&["--upstream", &upstream]));

    for user in ["postgres", "trusted"] {
        let out = proxy.psql(user, "postgres", None, "SELECT current_user");
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert_eq!(stdout(&out), user);
    }
    // Any password, or none: the server trusts, so the proxy does too.
    let out = proxy.psql("trusted", "postgres", Some("whatever"), "SELECT 1");
    assert!(out.status.success(), "{}", stderr(&out));
    // A role the server does not know: its own words.
    let out = proxy.psql("nobody", "postgres", None, "SELECT 1");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("role \"nobody\" does not exist"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_line_against_a_scram_server() {
    let cluster = scram_cluster();
    admin(&cluster)
        .await
        .batch_execute("CREATE ROLE app LOGIN PASSWORD 'apppw'")
        .await
        .unwrap();
    let upstream = cluster.url("postgres", None, "postgres");
    let args = ["--upstream", &upstream, "--admin-users", "postgres"];
    let proxy = tokio::task::block_in_place(|| Running::start(&args));

    let out = proxy.psql("app", "postgres", Some("apppw"), "SELECT current_user");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "app");
    let out = proxy.psql("app", "postgres", Some("wrong"), "SELECT 1");
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("password authentication failed for user \"app\""),
        "{said}"
    );
    let log = proxy.log_text();
    assert!(log.contains("login rejected"), "{log}");
    assert!(log.contains("server rejected the password"), "{log}");

    // --admin-users: the console checks the password with the server, then the list.
    let out = proxy.psql(
        "postgres",
        "pgsidecar",
        Some(super::passthrough::SUPERUSER_PW),
        "SHOW POOLS",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("app"), "{}", stdout(&out));
    let out = proxy.psql("app", "pgsidecar", Some("apppw"), "SHOW POOLS");
    assert!(
        stderr(&out).contains("not in admin_users"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_type_flag_and_the_logged_reason() {
    let cluster = scram_cluster();
    let upstream = cluster.url("postgres", None, "postgres");
    let args = ["--upstream", &upstream, "--auth-type", "scram-sha-256"];
    let proxy = tokio::task::block_in_place(|| Running::start(&args));
    let out = proxy.psql("app", "postgres", Some("apppw"), "SELECT 1");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("password authentication failed for user \"app\""),
        "{}",
        stderr(&out)
    );
    let log = proxy.log_text();
    assert!(
        log.contains("no [[users]] entry and no auth_query for user \\\"app\\\"")
            || log.contains("no [[users]] entry and no auth_query for user \"app\""),
        "{log}"
    );
}
