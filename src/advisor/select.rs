//! Choosing what to suggest: with HypoPG, the greedy pick over costed candidates;
//! GIN candidates and (without HypoPG) btree ones as labelled heuristics.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::Client;

use tokio::time::Instant;

use super::candidates::{Catalog, IndexDef, Method};
use super::hypo::{self, Costing, Weights};
use super::pass::Shape;
use super::report::{Served, Suggestion};
use super::state::State;
use super::Env;
use crate::stats::{CommandKind, Window};

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

pub(super) async fn validated(
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
pub(super) fn heuristic_btree(
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
pub(super) fn heuristic_gin(
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
