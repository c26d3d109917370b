//! `SHOW POOLS`, `SHOW CLIENTS`, `SHOW SERVERS` and `SHOW DATABASES`: PgBouncer's
//! columns, in PgBouncer's order, for every column pgsidecar has (columns about things it
//! does not have, such as cancel-request queues, reserve pools or TLS details, are left
//! out); pgsidecar's own columns come last.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::wire::{format_time, Cell, Kind, ResultSet};
use crate::clients::ClientEntry;
use crate::pool::{mode_name, Pool, PoolKey};
use crate::state::Running;

use Kind::{Int8, Text};

fn sorted_pools(state: &Running) -> Vec<Arc<Pool>> {
    let mut pools = state.all_pools();
    pools.sort_by(|a, b| a.key.cmp(&b.key));
    pools
}

fn sorted_clients(state: &Running) -> Vec<Arc<ClientEntry>> {
    let mut clients = state.clients_registry.list();
    clients.sort_by_key(|c| (c.connected_at, c.pid));
    clients
}

const POOL_COLUMNS: &[(&str, Kind)] = &[
    ("database", Text),
    ("user", Text),
    ("cl_active", Int8),
    ("cl_waiting", Int8),
    ("sv_active", Int8),
    ("sv_idle", Int8),
    ("sv_used", Int8),
    ("sv_tested", Int8),
    ("sv_login", Int8),
    ("maxwait", Int8),
    ("maxwait_us", Int8),
    ("pool_mode", Text),
    ("paused", Int8),
];

/// One row per (database, user) pool: a rendering of each pool's [`crate::pool::Status`].
pub fn show_pools(state: &Running) -> ResultSet {
    let mut rs = ResultSet::new(POOL_COLUMNS);
    for pool in state.status().0 {
        let (servers, clients) = (&pool.servers, &pool.clients);
        // maxwait: PgBouncer shows how long the oldest waiting client has waited. The
        // pool keeps only the longest wait seen since start, so that is shown while
        // clients wait, and 0 when none does (so alerts on it clear).
        let max_us = match clients.waiting {
            0 => 0,
            _ => pool.wait_us_max,
        };
        rs.push(vec![
            pool.key.database.as_str().into(),
            pool.key.user.as_str().into(),
            // PgBouncer's cl_active counts every client not waiting.
            (clients.active + clients.idle).into(),
            clients.waiting.into(),
            servers.active.into(),
            // PgBouncer's sv_used: idle servers that get a check before reuse.
            (servers.idle - servers.idle_used).into(),
            servers.idle_used.into(),
            servers.testing.into(),
            servers.login.into(),
            (max_us / 1_000_000).into(),
            (max_us % 1_000_000).into(),
            pool.mode_name().into(),
            u64::from(pool.paused).into(),
        ]);
    }
    rs
}

const CLIENT_COLUMNS: &[(&str, Kind)] = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int8),
    ("connect_time", Text),
    ("tls", Text),
    ("application_name", Text),
    ("id", Int8),
    ("server_pid", Int8),
];

/// Every logged-in client (console clients included, as in PgBouncer). `id` is the pid
/// of the client's BackendKeyData; `server_pid` the server it holds now, if any.
pub fn show_clients(state: &Running) -> ResultSet {
    let mut rs = ResultSet::new(CLIENT_COLUMNS);
    for c in sorted_clients(state) {
        rs.push(vec![
            "C".into(),
            c.identity.user.as_str().into(),
            c.identity.database.as_str().into(),
            c.state().as_str().into(),
            c.identity.peer.ip().to_string().into(),
            c.identity.peer.port().into(),
            format_time(c.connected_at).into(),
            "".into(),
            c.identity.application_name.as_str().into(),
            c.pid.into(),
            c.server_pid().into(),
        ]);
    }
    rs
}

const SERVER_COLUMNS: &[(&str, Kind)] = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int8),
    ("connect_time", Text),
    ("request_time", Text),
    ("remote_pid", Int8),
    ("tls", Text),
    ("application_name", Text),
    ("id", Int8),
    ("client_id", Int8),
];

/// Servers in use (found through the clients holding them; their connect time is not
/// known) and idle servers (`used` once idle past `server_check_delay`). Servers being
/// opened or checked are counted in SHOW POOLS only.
#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
pub fn show_servers(state: &Running) -> ResultSet {
    let mut rs = ResultSet::new(SERVER_COLUMNS);
    let address = |key: &PoolKey| -> (Cell, Cell) {
        match state.pools.get(key) {
            Some(pool) => {
                let s = pool.params().settings.clone();
                (s.host.into(), s.port.into())
            }
            None => (Cell::Null, Cell::Null),
        }
    };
    for c in sorted_clients(state) {
        let Some(pid) = c.server_pid() else { continue };
        let key = PoolKey {
            database: c.identity.database.clone(),
            user: c.identity.user.clone(),
        };
        let (host, port) = address(&key);
        rs.push(vec![
            "S".into(),
            key.user.into(),
            key.database.into(),
            "active".into(),
            host,
            port,
            Cell::Null,
            Cell::Null,
            pid.into(),
            "".into(),
            c.identity.application_name.as_str().into(),
            pid.into(),
            c.pid.into(),
        ]);
    }
    let now = SystemTime::now();
    let ago = |d| format_time(now.checked_sub(d).unwrap_or(now));
    for pool in sorted_pools(state) {
        let params = pool.params();
        for (pid, age, idle) in pool.idle_servers() {
            let state = if idle > params.check_delay {
                "used"
            } else {
                "idle"
            };
            rs.push(vec![
                "S".into(),
                pool.key.user.as_str().into(),
                pool.key.database.as_str().into(),
                state.into(),
                params.settings.host.as_str().into(),
                params.settings.port.into(),
                ago(age).into(),
                ago(idle).into(),
                pid.into(),
                "".into(),
                "".into(),
                pid.into(),
                Cell::Null,
            ]);
        }
    }
    rs
}

const DATABASE_COLUMNS: &[(&str, Kind)] = &[
    ("name", Text),
    ("host", Text),
    ("port", Int8),
    ("database", Text),
    ("pool_size", Int8),
    ("min_pool_size", Int8),
    ("server_lifetime", Int8),
    ("pool_mode", Text),
    ("current_connections", Int8),
    ("current_client_connections", Int8),
    ("paused", Int8),
];

/// Databases configured under `[databases]` or in use (any database name is served).
/// `pool_mode` is the database's override, NULL when it follows the global one.
pub fn show_databases(state: &Running) -> ResultSet {
    let config = state.config();
    let upstream = state.upstream();
    let mut names: BTreeSet<String> = config.databases.keys().cloned().collect();
    let (pools, clients) = state.status();
    // Per database: open servers, any pool paused, and logged-in clients.
    let mut by_db: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for pool in &pools {
        names.insert(pool.key.database.clone());
        let slot = by_db.entry(pool.key.database.clone()).or_default();
        slot.0 += pool.servers.open;
        slot.1 |= pool.paused;
    }
    let mut client_counts: HashMap<&str, u64> = HashMap::new();
    for (key, c) in &clients {
        *client_counts.entry(key.database.as_str()).or_default() += c.active + c.waiting + c.idle;
    }
    let mut rs = ResultSet::new(DATABASE_COLUMNS);
    for name in names {
        let settings = config.pool_settings(&upstream, &name);
        let (open, paused) = by_db.get(&name).copied().unwrap_or_default();
        let mode = config.databases.get(&name).and_then(|d| d.pool_mode);
        rs.push(vec![
            name.as_str().into(),
            settings.host.into(),
            settings.port.into(),
            settings.server_dbname.into(),
            settings.size.into(),
            settings.min_size.into(),
            config.server_lifetime.as_secs().into(),
            mode.map(mode_name).into(),
            open.into(),
            client_counts
                .get(name.as_str())
                .copied()
                .unwrap_or(0)
                .into(),
            u64::from(paused).into(),
        ]);
    }
    rs
}
