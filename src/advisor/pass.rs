//! One advisor pass: per database with samples, on a side connection and inside a
//! read-only transaction that is rolled back, candidates are built and costed, picked
//! greedily, GIN and no-HypoPG cases added as heuristics; then index health, and the
//! closed loop over every suggestion made so far.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

use super::candidates::{self, Catalog, IndexDef, Method};
use super::catalog::{self, Existing};
use super::hypo::{self, Costing, Weights};
use super::report::{DatabaseRun, Report, Served, Suggestion};
use super::samples::Kept;
use super::state::{lock, State};
use super::tree::{self, Level};
use super::{health, store, Advisor, AdvisorError, Env, Target};
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
    measure(state, report);
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
    follow(state, env, &database, &existing, report).await;
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
        validated(state, env, client, &shapes, &all, deadline).await?
    } else {
        heuristic_btree(&run.database, &shapes, &per_shape, &catalog)
    };
    out.extend(heuristic_gin(&run.database, &shapes, &per_shape));
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

/// Writes per table the proxy saw (INSERT, UPDATE, DELETE calls).
fn writes_by_table(env: &Env, database: &str) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for row in env.registry.snapshot(Window::All, env.clock.now()) {
        let write = matches!(
            row.meta.command,
            CommandKind::Insert | CommandKind::Update | CommandKind::Delete
        );
        if write && row.key.database == database {
            for t in &row.meta.tables {
                *out.entry(t.clone()).or_default() += row.stats.calls;
            }
        }
    }
    out
}

async fn validated(
    state: &State,
    env: &Env,
    client: &Client,
    shapes: &[Shape],
    all: &[IndexDef],
    deadline: Instant,
) -> Result<Vec<Suggestion>, tokio_postgres::Error> {
    let costing: Vec<Costing<'_>> = shapes
        .iter()
        .map(|s| Costing {
            inputs: &s.kept.inputs,
            tables: &s.tables,
        })
        .collect();
    let btree: Vec<IndexDef> = all
        .iter()
        .filter(|c| c.method == Method::Btree)
        .cloned()
        .collect();
    let (costs, sizes) = hypo::cost_candidates(client, &btree, &costing, deadline).await?;
    let calls: Vec<u64> = shapes.iter().map(|s| s.calls).collect();
    let base: Vec<f64> = shapes.iter().map(|s| s.base).collect();
    let writes = writes_by_table(
        env,
        &shapes
            .first()
            .map(|s| s.kept.entry.key().database.clone())
            .unwrap_or_default(),
    );
    let c = &state.config;
    let weights = Weights {
        calls: &calls,
        base: &base,
        writes: &writes,
        write_cost: c.write_cost,
        min_cost: c.min_cost,
        min_saving: c.min_saving,
        max_indexes: c.max_indexes,
    };
    let picks = hypo::select(&btree, &costs, &weights);
    Ok(picks
        .into_iter()
        .map(|p| {
            let def = btree[p.candidate].clone();
            let served: Vec<(usize, f64, Option<f64>)> = p.served.iter().map(|&(s, b, a)| (s, b, Some(a))).collect();
            let saving = p.served.iter().map(|&(_, b, a)| 1.0 - a / b).sum::<f64>() / p.served.len().max(1) as f64;
            let reason = format!(
                "HypoPG: cuts the planned cost of {} statement(s) by {:.0}% on average, costed with their sampled values",
                p.served.len(),
                saving * 100.0
            );
            let mut s = suggestion(def, shapes, &served, reason, None);
            s.estimated_benefit = p.benefit;
            s.estimated_saving = saving;
            s.size_bytes = sizes[p.candidate];
            s
        })
        .collect())
}

fn suggestion(
    index: IndexDef,
    shapes: &[Shape],
    served: &[(usize, f64, Option<f64>)],
    reason: String,
    label: Option<String>,
) -> Suggestion {
    let serves = served
        .iter()
        .map(|&(s, before, after)| Served {
            fingerprint: shapes[s].kept.entry.key().fingerprint,
            query: shapes[s].kept.entry.meta().normalized.clone(),
            calls: shapes[s].calls,
            cost_before: before,
            cost_after: after,
            measured_before: None,
            measured_after: None,
        })
        .collect();
    Suggestion {
        database: String::new(),
        name: index.name(),
        sql: index.create_sql(),
        validated: label.is_none(),
        label,
        reason,
        serves,
        estimated_benefit: 0.0,
        estimated_saving: 0.0,
        size_bytes: None,
        applied_at_ms: None,
        applied_as: None,
        index,
    }
}

/// Without HypoPG: per statement that scans a table sequentially, its widest btree
/// candidate on that table.
fn heuristic_btree(
    database: &str,
    shapes: &[Shape],
    per_shape: &[BTreeSet<IndexDef>],
    _c: &Catalog,
) -> Vec<Suggestion> {
    let mut chosen: BTreeMap<IndexDef, Vec<(usize, f64, Option<f64>)>> = BTreeMap::new();
    for (i, (s, cands)) in shapes.iter().zip(per_shape).enumerate() {
        for table in &s.seq_scanned {
            let best = cands
                .iter()
                .filter(|c| {
                    c.method == Method::Btree && c.predicate.is_none() && c.include.is_empty()
                })
                .filter(|c| c.table.rsplit('.').next() == Some(table.as_str()))
                .max_by_key(|c| c.keys.len());
            if let Some(best) = best {
                chosen
                    .entry(best.clone())
                    .or_default()
                    .push((i, s.base, None));
            }
        }
    }
    let label = format!("heuristic, not validated: HypoPG is not installed in {database}, so the planner could not cost it");
    chosen
        .into_iter()
        .map(|(def, served)| {
            let reason = format!(
                "{} statement(s) scan {} sequentially and filter or sort on these columns",
                served.len(),
                def.table
            );
            suggestion(def, shapes, &served, reason, Some(label.clone()))
        })
        .collect()
}

/// GIN candidates for statements that scan their table sequentially.
fn heuristic_gin(
    _database: &str,
    shapes: &[Shape],
    per_shape: &[BTreeSet<IndexDef>],
) -> Vec<Suggestion> {
    let mut chosen: BTreeMap<IndexDef, Vec<(usize, f64, Option<f64>)>> = BTreeMap::new();
    for (i, (s, cands)) in shapes.iter().zip(per_shape).enumerate() {
        for c in cands.iter().filter(|c| c.method == Method::Gin) {
            let table = c.table.rsplit('.').next().unwrap_or("");
            if s.seq_scanned.contains(table) {
                chosen.entry(c.clone()).or_default().push((i, s.base, None));
            }
        }
    }
    let label = "heuristic, not validated: HypoPG cannot cost GIN indexes, so this comes from the predicate's operator (containment, @@ or ILIKE '%…') and a sequential scan in the plan".to_string();
    chosen
        .into_iter()
        .map(|(def, served)| {
            let what = match def.opclass.as_deref() {
                Some("gin_trgm_ops") => "ILIKE/LIKE with a leading wildcard",
                Some("jsonb_path_ops") => "jsonb containment (@>)",
                _ if def.keys[0].starts_with('(') => "full-text search (@@)",
                _ => "containment (@>, <@, &&, ?)",
            };
            let reason = format!(
                "{} statement(s) filter {} by {what} with a sequential scan",
                served.len(),
                def.table
            );
            suggestion(def, shapes, &served, reason, Some(label.clone()))
        })
        .collect()
}

/// The closed loop: remember new suggestions, mark those whose index now exists (and
/// start counting "after"), carry applied ones into the report, store their outcome.
async fn follow(
    state: &State,
    env: &Env,
    database: &str,
    existing: &[Existing],
    report: &mut Report,
) {
    let now = unix_ms();
    let mut outcomes = Vec::new();
    {
        let mut followed = lock(&state.followed);
        for s in report.suggestions.iter().filter(|s| s.database == database) {
            if !followed
                .iter()
                .any(|f| f.database == s.database && f.index == s.index)
            {
                for v in &s.serves {
                    state.watch.watch(database, v.fingerprint);
                }
                followed.push(s.clone());
            }
        }
        for f in followed
            .iter_mut()
            .filter(|f| f.database == database && f.applied_at_ms.is_none())
        {
            if let Some(name) = applied_as(&f.index, existing) {
                f.applied_at_ms = Some(now);
                f.applied_as = Some(name);
                for v in &f.serves {
                    state.watch.applied(database, v.fingerprint);
                }
            }
        }
        for f in followed
            .iter()
            .filter(|f| f.database == database && f.applied_at_ms.is_some())
        {
            report
                .suggestions
                .retain(|s| !(s.database == f.database && s.index == f.index));
            report.suggestions.push(f.clone());
            outcomes.push(f.clone());
        }
    }
    let Some(st) = (env.store)() else {
        return;
    };
    for f in outcomes {
        for v in &f.serves {
            let Some((before, after)) = state.watch.measured(database, v.fingerprint) else {
                continue;
            };
            let o = store::Outcome {
                database,
                index_name: f.applied_as.as_deref().unwrap_or(&f.name),
                fingerprint: v.fingerprint,
                applied_at_ms: f.applied_at_ms.unwrap_or(now),
                cost: (v.cost_before, v.cost_after),
                before,
                after,
            };
            if let Err(e) = store::outcome(&st, &o).await {
                tracing::warn!(error = %e, "advisor: outcome not stored");
            }
        }
    }
}

/// The name of an existing index that is this suggestion: same name, or same table,
/// method, key columns and presence of a predicate.
fn applied_as(def: &IndexDef, existing: &[Existing]) -> Option<String> {
    let name = def.name();
    existing
        .iter()
        .find(|(table, ix, method, keys, pred)| {
            *ix == name
                || (table == &def.table
                    && *method == def.method
                    && *keys == def.keys
                    && pred.is_some() == def.predicate.is_some())
        })
        .map(|e| e.1.clone())
}

/// Fills each served statement's measured latency before and after.
pub fn measure(state: &State, report: &mut Report) {
    for s in &mut report.suggestions {
        for v in &mut s.serves {
            if let Some((before, after)) = state.watch.measured(&s.database, v.fingerprint) {
                v.measured_before = Some(before);
                v.measured_after = s.applied_at_ms.is_some().then_some(after);
            }
        }
    }
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
