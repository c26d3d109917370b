//! Pool, client and build families, read from `Shared` at scrape time:
//! `pgsidecar_pool_connections{database, user, state="active|idle|testing|login"}`,
//! `pgsidecar_pool_clients{database, user, state="active|waiting|idle"}`,
//! `pgsidecar_pool_size`, `pgsidecar_pool_paused`, `pgsidecar_pool_checkouts_total`,
//! `pgsidecar_pool_wait_seconds` (histogram), `pgsidecar_pool_checkout_timeouts_total`,
//! `pgsidecar_server_connect_errors_total`, `pgsidecar_server_tls_logins_total`,
//! `pgsidecar_server_channel_bound_logins_total`, `pgsidecar_client_connections`,
//! `pgsidecar_client_connections_total`, `pgsidecar_client_connections_max` (the
//! configured `max_client_conn`), `pgsidecar_pinned_clients_total{reason}`,
//! `pgsidecar_client_buffer_bytes`, `pgsidecar_client_buffer_refusals_total` and
//! `pgsidecar_build_info{version}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::family::{Family, Spec};
use super::pool_rows::{MAX_POOL_SERIES, OTHER};
use crate::admin::pools::client_counts;
use crate::app::Shared;
use crate::pool::WAIT_BUCKETS;

pub use crate::query::PIN_REASONS;

const POOL: &[&str] = &["database", "user"];
const POOL_STATE: &[&str] = &["database", "user", "state"];

const fn spec(
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        help,
        kind,
        labels,
    }
}

const CONNECTIONS: Spec = spec(
    "pgsidecar_pool_connections",
    "Server connections by state",
    MetricType::GAUGE,
    POOL_STATE,
);
const CLIENTS: Spec = spec(
    "pgsidecar_pool_clients",
    "Logged-in clients by state",
    MetricType::GAUGE,
    POOL_STATE,
);
const SIZE: Spec = spec(
    "pgsidecar_pool_size",
    "Configured maximum server connections",
    MetricType::GAUGE,
    POOL,
);
const PAUSED: Spec = spec(
    "pgsidecar_pool_paused",
    "1 while the pool is paused",
    MetricType::GAUGE,
    POOL,
);
const CHECKOUTS: Spec = spec(
    "pgsidecar_pool_checkouts_total",
    "Server checkouts",
    MetricType::COUNTER,
    POOL,
);
const WAIT: Spec = spec(
    "pgsidecar_pool_wait_seconds",
    "Time clients waited for a server",
    MetricType::HISTOGRAM,
    POOL,
);
const TIMEOUTS: Spec = spec(
    "pgsidecar_pool_checkout_timeouts_total",
    "Clients that gave up waiting after checkout_timeout",
    MetricType::COUNTER,
    POOL,
);
const CONNECT_ERRORS: Spec = spec(
    "pgsidecar_server_connect_errors_total",
    "Failed attempts to open a server connection",
    MetricType::COUNTER,
    POOL,
);
const TLS_LOGINS: Spec = spec(
    "pgsidecar_server_tls_logins_total",
    "Server connections opened over TLS",
    MetricType::COUNTER,
    POOL,
);
const CHANNEL_BOUND: Spec = spec(
    "pgsidecar_server_channel_bound_logins_total",
    "Server logins with SCRAM-SHA-256-PLUS channel binding",
    MetricType::COUNTER,
    POOL,
);
const CLIENTS_NOW: Spec = spec(
    "pgsidecar_client_connections",
    "Client connections open now",
    MetricType::GAUGE,
    &[],
);
const CLIENTS_TOTAL: Spec = spec(
    "pgsidecar_client_connections_total",
    "Client connections accepted",
    MetricType::COUNTER,
    &[],
);
const CLIENTS_MAX: Spec = spec(
    "pgsidecar_client_connections_max",
    "Configured max_client_conn: client connections beyond it are refused",
    MetricType::GAUGE,
    &[],
);
const PINNED: Spec = spec(
    "pgsidecar_pinned_clients_total",
    "Clients pinned to their server in transaction mode, by reason",
    MetricType::COUNTER,
    &["reason"],
);
const BUFFERED: Spec = spec(
    "pgsidecar_client_buffer_bytes",
    "Client buffer bytes charged against client_buffer_budget (each client's first 512 KiB are free)",
    MetricType::GAUGE,
    &[],
);
const REFUSED: Spec = spec(
    "pgsidecar_client_buffer_refusals_total",
    "Clients closed with 53200 because their buffered message did not fit in client_buffer_budget",
    MetricType::COUNTER,
    &[],
);
const BUILD: Spec = spec(
    "pgsidecar_build_info",
    "The running version",
    MetricType::GAUGE,
    &["version"],
);

pub const SPECS: [&Spec; 17] = [
    &CONNECTIONS,
    &CLIENTS,
    &SIZE,
    &PAUSED,
    &CHECKOUTS,
    &WAIT,
    &TIMEOUTS,
    &CONNECT_ERRORS,
    &TLS_LOGINS,
    &CHANNEL_BOUND,
    &CLIENTS_NOW,
    &CLIENTS_TOTAL,
    &CLIENTS_MAX,
    &PINNED,
    &BUFFERED,
    &REFUSED,
    &BUILD,
];

pub struct PoolCollector {
    shared: Arc<Shared>,
    descs: Vec<Desc>,
}

impl PoolCollector {
    pub fn new(shared: Arc<Shared>) -> prometheus::Result<PoolCollector> {
        Ok(PoolCollector {
            shared,
            descs: SPECS.iter().map(|s| s.desc()).collect::<Result<_, _>>()?,
        })
    }

    fn pools(&self) -> Vec<Family> {
        let mut conns = Family::new(&CONNECTIONS);
        let mut size = Family::new(&SIZE);
        let mut paused = Family::new(&PAUSED);
        let mut checkouts = Family::new(&CHECKOUTS);
        let mut wait = Family::new(&WAIT);
        let mut timeouts = Family::new(&TIMEOUTS);
        let mut errors = Family::new(&CONNECT_ERRORS);
        let mut tls = Family::new(&TLS_LOGINS);
        let mut bound = Family::new(&CHANNEL_BOUND);
        let rows = super::pool_rows::rows(&self.shared.all_pools());
        for row in &rows {
            let labels = [row.database.as_str(), row.user.as_str()];
            let [db, user] = labels;
            for (state, n) in ["active", "idle", "testing", "login"]
                .iter()
                .zip(row.servers)
            {
                conns.gauge(&[db, user, state], n as f64);
            }
            size.gauge(&labels, row.size as f64);
            paused.gauge(&labels, row.paused as f64);
            checkouts.counter(&labels, row.checkouts as f64);
            let (cumulative, count, sum) = (&row.wait_cumulative, row.wait_count, row.wait_sum);
            wait.histogram(&labels, &WAIT_BUCKETS, cumulative, count, sum);
            timeouts.counter(&labels, row.timeouts as f64);
            errors.counter(&labels, row.connect_errors as f64);
            tls.counter(&labels, row.tls_logins as f64);
            bound.counter(&labels, row.channel_bound as f64);
        }
        let shown: BTreeSet<(String, String)> =
            (rows.into_iter()).map(|r| (r.database, r.user)).collect();
        let clients = self.clients(&shown);
        vec![
            conns, clients, size, paused, checkouts, wait, timeouts, errors, tls, bound,
        ]
    }

    /// Clients per (database, user) of every pool shown and every client's own pair;
    /// past [`pool_rows::MAX_POOL_SERIES`] pairs, the rest are summed as `(other)`.
    fn clients(&self, shown: &BTreeSet<(String, String)>) -> Family {
        let counts = client_counts(&self.shared);
        let keys: BTreeSet<(String, String)> = (shown.iter().cloned())
            .chain(counts.keys().cloned())
            .collect();
        let other = (OTHER.to_string(), OTHER.to_string());
        let mut totals: BTreeMap<(String, String), [u64; 3]> = BTreeMap::new();
        let room = MAX_POOL_SERIES.max(shown.len());
        for key in keys {
            let n = counts.get(&key).copied().unwrap_or_default();
            let own = shown.contains(&key) || totals.len() < room;
            let slot = totals.entry(if own { key } else { other.clone() });
            let sum = slot.or_default();
            for (a, b) in sum.iter_mut().zip(n) {
                *a += b;
            }
        }
        let mut family = Family::new(&CLIENTS);
        for (key, n) in totals {
            for (state, n) in ["active", "waiting", "idle"].iter().zip(n) {
                family.gauge(&[&key.0, &key.1, state], n as f64);
            }
        }
        family
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.pools();
        let mut now = Family::new(&CLIENTS_NOW);
        now.gauge(&[], self.shared.clients.load(Ordering::Relaxed) as f64);
        let mut total = Family::new(&CLIENTS_TOTAL);
        total.counter(
            &[],
            self.shared.clients_total.load(Ordering::Relaxed) as f64,
        );
        let mut max = Family::new(&CLIENTS_MAX);
        max.gauge(&[], self.shared.config().max_client_conn as f64);
        let mut pinned = Family::new(&PINNED);
        for (reason, n) in PIN_REASONS.iter().zip(&self.shared.pinned_clients) {
            pinned.counter(&[reason], n.load(Ordering::Relaxed) as f64);
        }
        let budget = &self.shared.buffer_budget;
        let mut buffered = Family::new(&BUFFERED);
        buffered.gauge(&[], budget.used() as f64);
        let mut refused = Family::new(&REFUSED);
        refused.counter(&[], budget.refused.load(Ordering::Relaxed) as f64);
        let mut build = Family::new(&BUILD);
        build.gauge(&[env!("CARGO_PKG_VERSION")], 1.0);
        families.extend([now, total, max, pinned, buffered, refused, build]);
        families.into_iter().map(Family::finish).collect()
    }
}
