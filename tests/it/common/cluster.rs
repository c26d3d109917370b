//! Throwaway PostgreSQL clusters for tests that need their own server (SCRAM-only
//! authentication, a server to restart or stop). Created with the Debian server binaries
//! (`pg_config --bindir`); run as the `postgres` user when the tests run as root, since
//! PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    bindir: PathBuf,
}

fn bindir() -> PathBuf {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config is installed (postgresql-server-dev or postgresql)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs a server binary, as `postgres` when we are root.
fn run(bin: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).output().expect("run postgres binary")
}

/// A free TCP port on loopback (released before use; good enough for tests).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    /// Creates and starts a cluster. `hba` is the whole pg_hba.conf; `conf` lines are
    /// appended to postgresql.conf. A superuser `postgres` exists; `password` (if any)
    /// is set for it during initdb.
    pub fn start(hba: &str, conf: &[&str], password: Option<&str>) -> Cluster {
        let bindir = bindir();
        let dir = std::env::temp_dir().join(format!(
            "pgsidecar-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data = dir.join("data");
        let data_s = data.to_string_lossy().to_string();
        let mut args = vec!["-D", &data_s, "-U", "postgres", "-N", "-A", "trust"];
        let pwfile = dir.join("pw");
        let pwfile_s = pwfile.to_string_lossy().to_string();
        if let Some(p) = password {
            std::fs::write(&pwfile, p).expect("pwfile");
            if is_root() {
                Command::new("chown")
                    .args(["postgres"])
                    .arg(&pwfile)
                    .status()
                    .ok();
            }
            args.push("--pwfile");
            args.push(&pwfile_s);
        }
        let out = run(&bindir.join("initdb"), &args);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut extra = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 60\n",
            dir.display()
        );
        for line in conf {
            extra.push_str(line);
            extra.push('\n');
        }
        append(&data.join("postgresql.conf"), &extra);
        std::fs::write(data.join("pg_hba.conf"), hba).expect("hba");
        let cluster = Cluster { dir, port, bindir };
        cluster.pg_ctl(&["start", "-w", "-l", &cluster.log_path()]);
        cluster
    }

    fn log_path(&self) -> String {
        self.dir.join("log").to_string_lossy().to_string()
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().to_string()
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        let out = run(&self.bindir.join("pg_ctl"), &all);
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-w", "-m", "fast"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-l", &self.log_path()]);
    }

    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-w", "-m", "fast", "-l", &self.log_path()]);
    }

    /// URL of this cluster for `user` (password optional) and database.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        match password {
            Some(p) => format!("postgres://{user}:{p}@127.0.0.1:{}/{db}", self.port),
            None => format!("postgres://{user}@127.0.0.1:{}/{db}", self.port),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = run(
            &self.bindir.join("pg_ctl"),
            &["-D", &data, "stop", "-w", "-m", "immediate"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    f.write_all(text.as_bytes()).expect("write postgresql.conf");
}
