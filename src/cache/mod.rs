//! The SELECT result cache: what may be cached (default-deny), the key, the stored
//! wire bytes, and invalidation in layers. Fail closed: whatever is not proven safe, and
//! every database whose invalidation channel is not listening, goes to the server.
//!
//! - [`syntax`] and [`analyze`]: eligibility from the parse tree, then from the
//!   server's own resolution on a side connection (cached in [`verdicts`]).
//! - [`policy`]: mode, rules and hints give an entry's lifetime.
//! - [`key`], [`store`], [`gens`], [`coalesce`]: the key, the entries (moka, weighed in
//!   bytes), generation counters with fill stamps, and coalesced misses.
//! - [`listen`], [`install`]: the NOTIFY channel fed by triggers, one listener per
//!   database, and the SQL that installs the triggers.
//! - [`stats`], [`metrics`], [`api`]: counters, `/metrics`, `/api/cache`, the console.
//!
//! The request pipeline calls [`Cache::lookup`] before a server is placed (a hit never
//! checks one out) and [`Cache::fill`] with the response of a miss.

pub mod analyze;
pub mod api;
pub mod cli;
pub mod coalesce;
pub mod config;
pub mod conn;
pub mod console;
pub mod gens;
pub mod install;
pub mod key;
pub mod listen;
pub mod metrics;
pub mod policy;
pub mod reason;
pub mod session;
pub mod stats;
pub mod store;
pub mod syntax;
pub mod verdicts;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;

use coalesce::{Flight, Flights, Role};
use config::{CacheConfig, CacheMode};
use gens::Generations;
use reason::{Bypass, Refusal, Source};
use stats::CacheStats;
use store::{Entry, Found, Store};

pub use config::CacheRule;
pub use listen::Listeners;
pub use session::session_opts_out;
pub use verdicts::Verdicts;

/// Errors of the cache's own connections (install, uninstall, listener, analysis).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{what}: {source}")]
    Sql {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("side connection pool: {0}")]
    Pool(String),
}

/// What the pipeline knows about one request to look up.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub database: &'a str,
    pub session_user: &'a str,
    pub current_role: &'a str,
    pub search_path: &'a str,
    /// [`key::settings_hash`] of the session's output settings.
    pub settings: [u8; 32],
    pub text: &'a str,
    pub fingerprint: u64,
    pub param_types: &'a [u32],
    pub param_formats: &'a [i16],
    pub params: &'a [Option<&'a [u8]>],
    pub result_formats: &'a [i16],
}

/// What the pipeline does with a request.
pub enum Outcome {
    /// Answer with these bytes (RowDescription … CommandComplete); no server.
    Hit(Bytes),
    /// Go to the server, then hand the response to [`Cache::fill`].
    Miss(Ticket),
    /// An identical miss is in flight: wait for it ([`Flight::wait`], bounded); on
    /// `None` go to the server without a ticket.
    Follow(Arc<Flight>, Duration),
    /// Not cacheable (counted): go to the server.
    Skip,
}

/// A miss that may be stored: the generation stamp taken before it went out.
pub struct Ticket {
    key: Box<[u8]>,
    database: Arc<str>,
    tables: Arc<[u32]>,
    stamp: u64,
    life: policy::Lifetime,
    fingerprint: u64,
    flight: Option<Arc<Flight>>,
    flights: Arc<Flights>,
}

impl Drop for Ticket {
    /// A ticket dropped without a fill (error, disconnect) releases its followers.
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            self.flights.land(&self.key, &flight, None);
        }
    }
}

/// The cache of one sidecar.
pub struct Cache {
    config: ArcSwap<CacheConfig>,
    pub stats: Arc<CacheStats>,
    gens: Generations,
    store: Store,
    flights: Arc<Flights>,
    pub verdicts: Verdicts,
    pub listeners: Listeners,
    /// (database, bare table name) → OIDs of tables by that name some analysis depends
    /// on; a write names its tables as written, this finds what to invalidate.
    names: dashmap::DashMap<(String, String), Vec<u32>>,
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Cache {
        let stats = Arc::new(CacheStats::default());
        Cache {
            store: Store::new(config.max_bytes, stats.clone()),
            config: ArcSwap::from_pointee(config.clone()),
            stats,
            gens: Generations::default(),
            flights: Arc::default(),
            verdicts: Verdicts::default(),
            listeners: Listeners::default(),
            names: Default::default(),
        }
    }

    pub fn config(&self) -> Arc<CacheConfig> {
        self.config.load_full()
    }

    /// Applies a reloaded `[cache]` (rules, TTLs, mode; `max_bytes` needs a restart).
    pub fn reload(&self, config: &CacheConfig) {
        if config.mode == CacheMode::Off {
            self.invalidate_all(Source::Admin);
        }
        self.config.store(Arc::new(config.clone()));
    }

    pub fn enabled(&self) -> bool {
        self.config.load().mode != CacheMode::Off
    }

    /// Decides a request. Never blocks: analysis and listeners start in the background
    /// (the request goes to the server meanwhile).
    pub fn lookup(&self, req: &Request<'_>) -> Outcome {
        let config = self.config.load();
        if config.mode == CacheMode::Off {
            return Outcome::Skip;
        }
        let hint = syntax::hint(req.text);
        if hint == syntax::Hint::NoCache {
            return self.bypass(Bypass::OptOut);
        }
        if !self.listeners.listening(req.database) {
            return self.bypass(Bypass::ListenerDown);
        }
        let analysis = match self.verdicts.get(req) {
            None => return self.bypass(Bypass::Analyzing),
            Some(Err(refusal)) => return self.refuse(refusal, req.fingerprint),
            Some(Ok(analysis)) => analysis,
        };
        let stmt = policy::Statement {
            text: req.text,
            fingerprint: req.fingerprint,
            tables: &analysis.names,
            hint,
        };
        let Some(life) = policy::lifetime(&config, &stmt) else {
            return self.refuse(Refusal::NoRule, req.fingerprint);
        };
        let key = key::encode(&key::parts(req, &analysis.tables));
        self.find(key, req, &analysis.tables, life)
    }

    fn find(
        &self,
        key: Box<[u8]>,
        req: &Request<'_>,
        tables: &Arc<[u32]>,
        life: policy::Lifetime,
    ) -> Outcome {
        let current = |e: &Entry| e.stamp == self.gens.stamp(req.database, &e.tables);
        match self.store.get(&key, Instant::now()) {
            Found::Fresh(e) | Found::Stale(e) if current(&e) => {
                self.stats.hit(e.fingerprint, e.upstream);
                return Outcome::Hit(e.response.clone());
            }
            // This caller refills; a miss without coalescing (the others serve stale).
            Found::Refill(e) if current(&e) => {
                let ticket = self.ticket(key, req, tables, life, None);
                self.stats.miss(Refusal::NotCachedYet, req.fingerprint);
                return Outcome::Miss(ticket);
            }
            Found::Fresh(_) | Found::Stale(_) | Found::Refill(_) => self.store.remove(&key),
            Found::Absent => {}
        }
        self.stats.miss(Refusal::NotCachedYet, req.fingerprint);
        match self.flights.join(&key) {
            Role::Leader(flight) => {
                Outcome::Miss(self.ticket(key, req, tables, life, Some(flight)))
            }
            Role::Follower(flight) => Outcome::Follow(flight, self.config.load().coalesce_wait),
        }
    }

    fn ticket(
        &self,
        key: Box<[u8]>,
        req: &Request<'_>,
        tables: &Arc<[u32]>,
        life: policy::Lifetime,
        flight: Option<Arc<Flight>>,
    ) -> Ticket {
        Ticket {
            stamp: self.gens.stamp(req.database, tables),
            key,
            database: Arc::from(req.database),
            tables: tables.clone(),
            life,
            fingerprint: req.fingerprint,
            flight,
            flights: self.flights.clone(),
        }
    }

    /// Stores a miss's response (`None`: it ended in an error, a notice, a partial
    /// result or was abandoned) if it fits and no table it reads moved since the
    /// ticket was taken. Followers get the bytes only when they were stored.
    pub fn fill(&self, mut ticket: Ticket, response: Option<Bytes>, upstream: Duration) {
        let config = self.config.load();
        let stored = response.filter(|bytes| {
            let why_not = if bytes.len() > config.max_entry_bytes {
                Some(Refusal::NotStorable)
            } else if config.mode == CacheMode::Auto && upstream < config.min_upstream_time {
                Some(Refusal::TooCheap)
            } else if ticket.stamp != self.gens.stamp(&ticket.database, &ticket.tables) {
                Some(Refusal::NotCachedYet)
            } else {
                None
            };
            if let Some(reason) = why_not {
                self.stats.miss(reason, ticket.fingerprint);
            }
            why_not.is_none()
        });
        if let Some(bytes) = &stored {
            self.stats.stored(ticket.fingerprint, bytes.len());
            self.store.insert(
                ticket.key.clone(),
                Entry {
                    response: bytes.clone(),
                    tables: ticket.tables.clone(),
                    database: ticket.database.clone(),
                    stamp: ticket.stamp,
                    fingerprint: ticket.fingerprint,
                    stored_at: Instant::now(),
                    ttl: ticket.life.ttl,
                    stale_while_revalidate: ticket.life.stale_while_revalidate,
                    upstream,
                    refreshing: Default::default(),
                },
            );
        }
        if let Some(flight) = ticket.flight.take() {
            self.flights.land(&ticket.key, &flight, stored);
        }
    }

    /// Writes to `tables` of `database` happened (or are about to be visible).
    pub fn invalidate_tables(&self, database: &str, tables: &[u32], source: Source) {
        self.gens.bump_tables(database, tables);
        self.stats.invalidated(source);
    }

    /// Remembers which OIDs an analysis's table names stand for.
    pub fn register_names(&self, database: &str, analysis: &analyze::Analysis) {
        for (name, oid) in &analysis.named {
            let mut oids = self
                .names
                .entry((database.to_owned(), name.clone()))
                .or_default();
            if !oids.contains(oid) {
                oids.push(*oid);
            }
        }
    }

    /// A write through this sidecar to tables named as written (`t`, `s.t`, `"T"`):
    /// every table of that bare name any entry depends on, in any schema (a superset).
    /// A name no analysis knows is read by no entry.
    pub fn invalidate_names(&self, database: &str, names: &[String]) {
        let mut oids = Vec::new();
        for name in names {
            let bare = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
            let key = (database.to_owned(), bare.to_owned());
            if let Some(found) = self.names.get(&key) {
                oids.extend(found.iter().copied());
            }
        }
        self.invalidate_tables(database, &oids, Source::Proxy);
    }

    /// Anything in `database` may have changed: every entry of it goes, and DDL also
    /// drops the analyses (a view or a function's volatility may have changed).
    pub fn invalidate_database(&self, database: &str, source: Source) {
        self.gens.bump_database(database);
        if matches!(source, Source::Ddl | Source::FailClosed | Source::Admin) {
            self.verdicts.clear_database(database);
        }
        self.store.clear_database(database);
        self.stats.invalidated(source);
    }

    /// Everything goes.
    pub fn invalidate_all(&self, source: Source) {
        self.gens.bump_all();
        self.verdicts.clear();
        self.store.clear();
        self.stats.invalidated(source);
    }

    /// Removes every entry of one fingerprint; returns how many.
    pub fn clear_fingerprint(&self, fingerprint: u64) -> usize {
        self.store.clear_where(|e| e.fingerprint == fingerprint)
    }

    /// (entries, bytes) now.
    pub fn size(&self) -> (u64, u64) {
        self.store.size()
    }

    fn bypass(&self, reason: Bypass) -> Outcome {
        self.stats.bypass(reason);
        Outcome::Skip
    }

    fn refuse(&self, reason: Refusal, fingerprint: u64) -> Outcome {
        self.stats.miss(reason, fingerprint);
        Outcome::Skip
    }
}

/// Starts the analysis worker and the listener starter when the cache is on (a
/// reload that turns it on later needs a restart for them).
pub fn start(
    shared: &Arc<crate::state::Running>,
    tracker: &tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
) {
    if !shared.cache.enabled() {
        return;
    }
    Verdicts::start(shared.clone(), shared.cache.clone(), tracker, stop.clone());
    Listeners::start(shared.clone(), shared.cache.clone(), tracker, stop);
}

#[cfg(test)]
mod tests;
