//! One advisor pass: per database with samples, on a side connection and inside a
//! read-only transaction that is rolled back, candidates are built and costed, picked
//! greedily, GIN and no-HypoPG cases added as heuristics; then index health, and the
//! closed loop over every suggestion made so far.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

use super::candidates::{self, IndexDef};
use super::catalog::{self, Existing};
use super::hypo;
use super::report::{DatabaseRun, Report, Suggestion};
use super::samples::Kept;
use super::state::{lock, State};
use super::tree::{self, Level};
use super::{follow, health, select, store, Advisor, AdvisorError, Env, Target};
use crate::slow::unix_ms;
use crate::stats::{CommandKind, Window};

/// Each statement the advisor sends may run this long (plain EXPLAIN: planning only).
const STATEMENT_TIMEOUT: &str = "SET statement_timeout = '10s'; SET lock_timeout = '1s'";

/// A sampled statement ready to be costed.
pub(super) struct Shape {
    pub kept: Kept,
    pub levels: Vec<Vec<Level>>,
    pub tables: BTreeSet<String>,
    pub calls: u64,
    pub base: f64,
    pub seq_scanned: BTreeSet<String>,
}

pub async fn run(advisor: &Advisor, env: &Env) -> Report {
    let state = advisor.state();
    let started = Instant::now();
    let deadline = started + state.config.pass_timeout;
    let mut report = Report {
        at_ms: unix_ms(),
        ..Report::default()
    };
    let mut by_db: BTreeMap<String, Vec<Kept>> = BTreeMap::new();
    for kept in state.samples.all() {
        by_db
            .entry(kept.entry.key().database.clone())
            .or_default()
            .push(kept);
    }
    for (database, kept) in by_db {
        if Instant::now() >= deadline {
            report.timed_out = true;
            break;
        }
        let mut run = DatabaseRun {
            database: database.clone(),
            hypopg: false,
            fallback: None,
            statements_sampled: kept.len(),
            statements_costed: 0,
            candidates: 0,
            observed_secs: 0,
            error: None,
        };
        if let Err(e) = database_pass(advisor, env, kept, deadline, &mut run, &mut report).await {
            state
                .counters
                .pass_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            run.error = Some(e.to_string());
        }
        report.databases.push(run);
    }
    report.timed_out |= Instant::now() >= deadline;
    report.duration_ms = started.elapsed().as_millis() as u64;
    finish(state, &mut report);
    report
}

fn finish(state: &State, report: &mut Report) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &state.counters;
    c.passes.fetch_add(1, Relaxed);
    c.last_pass_ms.store(report.duration_ms, Relaxed);
    let heuristic = report.suggestions.iter().filter(|s| !s.validated).count();
    c.suggestions
        .store(report.suggestions.len() as i64, Relaxed);
    c.heuristic_suggestions.store(heuristic as i64, Relaxed);
    c.drop_candidates.store(report.drops.len() as i64, Relaxed);
    follow::measure(state, report);
}

async fn database_pass(
    advisor: &Advisor,
    env: &Env,
    kept: Vec<Kept>,
    deadline: Instant,
    run: &mut DatabaseRun,
    report: &mut Report,
) -> Result<(), AdvisorError> {
    let state = advisor.state();
    let database = run.database.clone();
    let client = advisor.connect(env, &database).await?;
    let q = |source| AdvisorError::Query {
        database: database.clone(),
        source,
    };
    client.batch_execute(STATEMENT_TIMEOUT).await.map_err(q)?;
    let (hypopg, trgm) = catalog::extensions(&client).await.map_err(q)?;
    run.hypopg = hypopg;
    lock(&state.hypopg).insert(database.clone(), hypopg);
    if !hypopg {
        run.fallback = Some(format!(
            "HypoPG is not installed in {database} (CREATE EXTENSION hypopg): suggestions are heuristic, not validated"
        ));
    }
    client.batch_execute("BEGIN READ ONLY").await.map_err(q)?;
    let outcome = advise(state, env, &client, kept, (hypopg, trgm), deadline, run).await;
    let rollback = client.batch_execute("ROLLBACK").await;
    let (suggestions, existing) = outcome.map_err(q)?;
    rollback.map_err(q)?;
    report.suggestions.extend(suggestions);
    let rows = health::indexes(&client).await.map_err(q)?;
    let (scans, observed) = observe(state, env, &database, &rows).await;
    run.observed_secs = observed;
    report.drops.extend(health::drops(
        &database,
        &rows,
        &scans,
        observed,
        &state.config,
    ));
    let findings = health::findings(&client, &database, &rows, &state.config)
        .await
        .map_err(q)?;
    report.findings.extend(findings);
    follow::follow(state, env, &database, &existing, report).await;
    Ok(())
}

/// Scans per index over the window and how long it was observed: from the store when
/// there is one (after writing this pass's snapshot), else from the counters alone.
async fn observe(
    state: &State,
    env: &Env,
    database: &str,
    rows: &[health::IndexRow],
) -> (HashMap<String, i64>, u64) {
    let window = state.config.unused_after.as_secs_f64();
    if let Some(store) = (env.store)() {
        if let Err(e) = store::snapshot(&store, database, rows).await {
            tracing::warn!(error = %e, "advisor: index snapshot not stored");
        }
        match store::observed(&store, database, window).await {
            Ok(found) => return found,
            Err(e) => tracing::warn!(error = %e, "advisor: index observation not read"),
        }
    }
    (HashMap::new(), 0)
}

async fn advise(
    state: &State,
    env: &Env,
    client: &Client,
    kept: Vec<Kept>,
    (hypopg, trgm): (bool, bool),
    deadline: Instant,
    run: &mut DatabaseRun,
) -> Result<(Vec<Suggestion>, Vec<Existing>), tokio_postgres::Error> {
    let mut shapes = parse_shapes(kept, env).await;
    let tables: BTreeSet<String> = shapes.iter().flat_map(|s| s.tables.clone()).collect();
    let (catalog, existing) = catalog::load(client, &tables, trgm).await?;
    for s in &mut shapes {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(p) = hypo::mean_plan(client, &s.kept.inputs).await {
            s.base = p.cost;
            s.seq_scanned = p.seq_scanned;
        }
    }
    shapes.retain(|s| s.base >= state.config.min_cost);
    run.statements_costed = shapes.len();
    let per_shape: Vec<BTreeSet<IndexDef>> = shapes
        .iter()
        .map(|s| {
            let extended = s.kept.inputs.iter().any(|i| !i.params.is_empty());
            candidates::for_statement(&s.levels, extended, &catalog, state.config.max_columns)
        })
        .collect();
    let all: Vec<IndexDef> = per_shape
        .iter()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    run.candidates = all.len();
    let mut out = if hypopg {
        select::validated(state, env, client, &shapes, &all, deadline).await?
    } else {
        select::heuristic_btree(&run.database, &shapes, &per_shape, &catalog)
    };
    out.extend(select::heuristic_gin(&run.database, &shapes, &per_shape));
    for s in &mut out {
        s.database = run.database.clone();
    }
    Ok((out, existing))
}

/// Parses every sample on the pg_query workers (off the async threads).
async fn parse_shapes(kept: Vec<Kept>, env: &Env) -> Vec<Shape> {
    let now = env.clock.now();
    let writes_ok = |k: &Kept| {
        matches!(
            k.entry.meta().command,
            CommandKind::Select | CommandKind::Update | CommandKind::Delete
        )
    };
    let kept: Vec<Kept> = kept.into_iter().filter(writes_ok).collect();
    let texts: Vec<Vec<String>> = kept
        .iter()
        .map(|k| k.inputs.iter().map(|i| i.sql.clone()).collect())
        .collect();
    let parsed = tokio::task::spawn_blocking(move || {
        crate::query::worker::run(move || {
            texts
                .iter()
                .map(|t| t.iter().map(|sql| tree::levels(sql)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    kept.into_iter()
        .zip(parsed)
        .map(|(kept, levels)| {
            let tables = levels
                .iter()
                .flatten()
                .flat_map(|l| l.scope.iter().map(|(_, t)| t.clone()))
                .collect();
            let calls = kept.entry.window_stats(Window::All, now).calls;
            Shape {
                kept,
                levels,
                tables,
                calls,
                base: 0.0,
                seq_scanned: BTreeSet::new(),
            }
        })
        .collect()
}

impl Advisor {
    /// A side connection to `database` (pooled per target; at most two at a time).
    async fn connect(
        &self,
        env: &Env,
        database: &str,
    ) -> Result<deadpool_postgres::Object, AdvisorError> {
        let target: Target = (env.target)(database).ok_or(AdvisorError::Disabled)?;
        let pool = self
            .pools
            .entry(target.clone())
            .or_insert_with(|| {
                crate::pool::side::side_pool(crate::pool::side::SideTarget {
                    host: &target.host,
                    port: target.port,
                    dbname: &target.dbname,
                    user: &target.user,
                    password: target.password.as_deref(),
                    application_name: "pgsidecar advisor",
                    connect_timeout: Duration::from_secs(5),
                    recycling: deadpool_postgres::RecyclingMethod::Verified,
                })
            })
            .clone();
        pool.get().await.map_err(|e| AdvisorError::Connect {
            database: database.to_string(),
            reason: e.to_string(),
        })
    }
}
