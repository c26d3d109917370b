//! What ships beside the binary, checked against the binary: the Grafana dashboards and
//! the Prometheus alert rules (evaluated by a real Prometheus scraping a live proxy, and
//! by `promtool`), the Dockerfile, docker-compose and the Kubernetes manifests.
//!
//! `prometheus` and `promtool` (Debian package `prometheus`) and Python's PyYAML are
//! installed by `.ci/run`. A test that needs Prometheus and cannot find it fails under
//! CI (`PGSIDECAR_CI=1`, set by `.ci/run`) and elsewhere skips with a loud message;
//! without PyYAML the YAML checks fail.

mod containers;
mod dashboards;
mod kubernetes;
mod prometheus;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// A file of the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The path of `tool` on PATH, or `None` after saying loudly why the caller skips.
/// Under CI a missing tool is a failure: `.ci/run` installs every one.
pub fn tool(tool: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!("{test}: `{tool}` is not installed (apt-get install prometheus)");
        assert!(std::env::var_os("PGSIDECAR_CI").is_none(), "{msg}");
        eprintln!("\n!!!!! SKIPPED {msg} !!!!!\n");
    }
    found
}

/// Runs `cmd`, returning (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Every document of a YAML file, as JSON (through Python's yaml: no YAML crate in
/// the build for a test).
pub fn yaml(path: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)";
    let file = repo(path);
    let (ok, out) = run(Command::new("python3").arg("-c").arg(script).arg(&file));
    if !ok && out.contains("No module named 'yaml'") {
        panic!("{path}: PyYAML is not installed (.ci/run: pip install pyyaml)");
    }
    assert!(ok, "{path} does not parse as YAML: {out}");
    match serde_json::from_str(&out) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("{path}: {other:?}"),
    }
}

/// The port of an `ADDR:PORT` listen address.
pub fn port_of(listen: &str) -> u16 {
    let port = listen.rsplit(':').next().unwrap_or_default();
    port.parse()
        .unwrap_or_else(|_| panic!("no port in {listen:?}"))
}

/// Loads a configuration file the way the binary does (defaults, validation).
pub fn load_config(path: &Path) -> pgsidecar::Config {
    let overrides = pgsidecar::config::Overrides::default();
    pgsidecar::Config::load(Some(path), &overrides)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
