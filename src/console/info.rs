//! `SHOW CONFIG` (every option with its value and default, secrets masked), `SHOW
//! LISTS`, `SHOW VERSION` and `SHOW HELP`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::wire::{command_complete, notice, Kind, ResultSet};
use crate::config::Config;
use crate::state::Running;

/// Options a reload does not change (they take a restart).
const RESTART_ONLY: &[&str] = &[
    "listen",
    "admin_listen",
    "log_format",
    "worker_threads",
    "stats",
    "max_fingerprints",
];

/// One row per option: `key`, `value`, `default`, `changeable` (by RELOAD), as
/// PgBouncer's. Values are as in `proxy.toml` (durations like `5s`; lists and tables
/// inline); options unset both now and by default are left out.
pub fn show_config(state: &Running) -> ResultSet {
    let current = as_table(&state.config());
    let default = as_table(&Config::default());
    let mut keys: Vec<&String> = current.keys().chain(default.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut rs = ResultSet::new(&[
        ("key", Kind::Text),
        ("value", Kind::Text),
        ("default", Kind::Text),
        ("changeable", Kind::Text),
    ]);
    for key in keys {
        let changeable = match RESTART_ONLY.contains(&key.as_str()) {
            true => "no",
            false => "yes",
        };
        rs.push(vec![
            key.as_str().into(),
            render(current.get(key)).into(),
            render(default.get(key)).into(),
            changeable.into(),
        ]);
    }
    rs
}

/// The configuration as a TOML table, passwords and tokens masked.
fn as_table(config: &Config) -> toml::Table {
    toml::from_str(&config.to_display_toml()).unwrap_or_default()
}

fn render(value: Option<&toml::Value>) -> String {
    match value {
        None => String::new(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// PgBouncer's object counts, for the lists pgsidecar has (no DNS cache, no free lists):
/// databases (configured or in use), users (configured or in use), pools, logged-in
/// clients, clients still logging in, and open server connections.
pub fn show_lists(state: &Running) -> ResultSet {
    let config = state.config();
    let (pools, _) = state.status();
    let mut databases: BTreeSet<&str> = config.databases.keys().map(String::as_str).collect();
    let mut users: BTreeSet<&str> = config.users.iter().map(|u| u.name.as_str()).collect();
    for pool in &pools {
        databases.insert(&pool.key.database);
        users.insert(&pool.key.user);
    }
    let logged_in = state.clients_registry.len();
    let connected = state.clients.load(Ordering::Relaxed);
    let servers: usize = pools.iter().map(|p| p.servers.open).sum();
    let mut rs = ResultSet::new(&[("list", Kind::Text), ("items", Kind::Int8)]);
    for (list, items) in [
        ("databases", databases.len()),
        ("users", users.len()),
        ("pools", pools.len()),
        ("used_clients", logged_in),
        ("login_clients", connected.saturating_sub(logged_in)),
        ("used_servers", servers),
    ] {
        rs.push(vec![list.into(), items.into()]);
    }
    rs
}

pub fn show_version() -> ResultSet {
    let mut rs = ResultSet::new(&[("version", Kind::Text)]);
    rs.push(vec![concat!("pgsidecar ", env!("CARGO_PKG_VERSION")).into()]);
    rs
}

/// The command list, as a notice (PgBouncer's way).
pub fn help(out: &mut BytesMut) {
    let detail = "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|LISTS|VERSION\n\
                  \tSHOW STATS|STATS_TOTALS\n\
                  \tSHOW QUERIES [1m|5m|1h|24h|all] [BY total|calls|mean|p50|p95|p99|max|errors|rows] [LIMIT n]\n\
                  \tSHOW SLOW|ALERTS|JOBS\n\
                  \tSHOW PLANS [fingerprint]\n\
                  \tEXPLAIN FINGERPRINT <fingerprint> [database]\n\
                  \tRELOAD\n\
                  \tPAUSE [<db>]\n\
                  \tRESUME [<db>]\n\
                  \tSHUTDOWN";
    notice(out, "Console usage", detail);
    command_complete(out, "SHOW");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rendering_masks_secrets() {
        let mut config = Config {
            admin_token: Some("sekrit".into()),
            admin_users: vec!["a".into(), "b".into()],
            ..Config::default()
        };
        config.upstream = "postgres://u:pw@h:5/db".into();
        let table = as_table(&config);
        assert_eq!(render(table.get("admin_token")), "********");
        assert_eq!(render(table.get("admin_users")), r#"["a", "b"]"#);
        assert_eq!(render(table.get("checkout_timeout")), "5s");
        assert_eq!(render(table.get("pool_size")), "20");
        assert!(!render(table.get("upstream")).contains("pw"));
        assert_eq!(render(None), "");
    }
}
