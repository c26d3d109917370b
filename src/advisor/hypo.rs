//! Costing with the planner: plain `EXPLAIN (FORMAT JSON)` of each sampled statement
//! with its real values, without and with each hypothetical index (HypoPG), inside a
//! read-only transaction that is always rolled back. Nothing is executed or created.

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::candidates::{IndexDef, Method};
use crate::explain::params::{param_types, raw_params, ExplainJson};
use crate::explain::ExplainRequest;
use crate::slow::CaptureInput;

/// Samples costed per statement at most (the plan rarely differs beyond that).
const SAMPLES_COSTED: usize = 3;

/// A statement's plan, reduced to what selection needs.
#[derive(Debug, Clone, Default)]
pub struct PlanCost {
    pub cost: f64,
    /// Tables the plan reads with a sequential scan.
    pub seq_scanned: BTreeSet<String>,
}

fn request(input: &CaptureInput) -> ExplainRequest {
    ExplainRequest {
        sql: format!("EXPLAIN (FORMAT JSON) {}", input.sql),
        param_types: input.param_types.clone(),
        params: input
            .params
            .iter()
            .map(|p| p.clone().map(bytes::Bytes::from))
            .collect(),
        param_formats: input.param_formats.clone(),
        role: None,
    }
}

/// The planner's estimate for one sample.
pub async fn plan(
    client: &Client,
    input: &CaptureInput,
) -> Result<PlanCost, tokio_postgres::Error> {
    let req = request(input);
    let stmt = client.prepare_typed(&req.sql, &param_types(&req)).await?;
    let params = raw_params(&req);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let row = client.query_one(&stmt, &refs).await?;
    let ExplainJson(json) = row.try_get(0)?;
    let top = &json[0]["Plan"];
    let mut seq_scanned = BTreeSet::new();
    seq_scans(top, &mut seq_scanned);
    Ok(PlanCost {
        cost: top["Total Cost"].as_f64().unwrap_or(0.0),
        seq_scanned,
    })
}

fn seq_scans(node: &serde_json::Value, out: &mut BTreeSet<String>) {
    if node["Node Type"] == "Seq Scan" {
        if let Some(r) = node["Relation Name"].as_str() {
            out.insert(r.to_string());
        }
    }
    if let Some(children) = node["Plans"].as_array() {
        for c in children {
            seq_scans(c, out);
        }
    }
}

/// Mean cost over the first samples that plan; `None` when none does.
pub async fn mean_plan(client: &Client, inputs: &[CaptureInput]) -> Option<PlanCost> {
    let mut total = 0.0;
    let mut n = 0;
    let mut seq = BTreeSet::new();
    for input in inputs.iter().take(SAMPLES_COSTED) {
        match plan(client, input).await {
            Ok(p) => {
                total += p.cost;
                n += 1;
                seq.extend(p.seq_scanned);
            }
            Err(e) => tracing::debug!(error = %e, "advisor: a sample did not plan"),
        }
    }
    (n > 0).then(|| PlanCost {
        cost: total / n as f64,
        seq_scanned: seq,
    })
}

/// One statement to cost: its samples and base cost.
pub struct Costing<'a> {
    pub inputs: &'a [CaptureInput],
    pub tables: &'a BTreeSet<String>,
}

/// Each btree candidate's cost for every statement on its table: `cost[k][s]`.
/// Also the hypothetical size of each candidate, in bytes.
pub async fn cost_candidates(
    client: &Client,
    candidates: &[IndexDef],
    statements: &[Costing<'_>],
    deadline: tokio::time::Instant,
) -> Result<(Vec<HashMap<usize, f64>>, Vec<Option<i64>>), tokio_postgres::Error> {
    let mut costs = Vec::with_capacity(candidates.len());
    let mut sizes = Vec::with_capacity(candidates.len());
    for k in candidates {
        let mut per = HashMap::new();
        if k.method != Method::Btree || tokio::time::Instant::now() >= deadline {
            costs.push(per);
            sizes.push(None);
            continue;
        }
        let create = format!("CREATE INDEX {}", k.body());
        let row = client
            .query_one(
                "SELECT indexrelid::oid, hypopg_relation_size(indexrelid)::int8 FROM hypopg_create_index($1)",
                &[&create],
            )
            .await;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, index = %create, "advisor: HypoPG refused a candidate");
                costs.push(per);
                sizes.push(None);
                continue;
            }
        };
        sizes.push(row.get::<_, Option<i64>>(1));
        for (s, st) in statements.iter().enumerate() {
            if st.tables.contains(&k.table) {
                if let Some(p) = mean_plan(client, st.inputs).await {
                    per.insert(s, p.cost);
                }
            }
        }
        client.batch_execute("SELECT hypopg_reset()").await?;
        costs.push(per);
    }
    Ok((costs, sizes))
}

/// One greedy pick: the index, and the statements it serves with their cost before and
/// after it (given the picks before it).
#[derive(Debug, Clone)]
pub struct Pick {
    pub candidate: usize,
    pub served: Vec<(usize, f64, f64)>,
    pub benefit: f64,
}

/// What the greedy selection weighs.
pub struct Weights<'a> {
    pub calls: &'a [u64],
    pub base: &'a [f64],
    /// Writes the proxy saw per table (each index slows them).
    pub writes: &'a HashMap<String, u64>,
    pub write_cost: f64,
    pub min_cost: f64,
    pub min_saving: f64,
    pub max_indexes: usize,
}

/// Greedy by `calls × cost saved − writes × write_cost`: an index counts for a
/// statement only when that statement costs at least `min_cost` and the index cuts its
/// current cost by at least `min_saving` (Dexter's gates by default).
pub fn select(
    candidates: &[IndexDef],
    costs: &[HashMap<usize, f64>],
    w: &Weights<'_>,
) -> Vec<Pick> {
    let mut current: Vec<f64> = w.base.to_vec();
    let mut picks: Vec<Pick> = Vec::new();
    let mut taken = vec![false; candidates.len()];
    while picks.len() < w.max_indexes {
        let mut best: Option<Pick> = None;
        for (k, per) in costs.iter().enumerate() {
            if taken[k] {
                continue;
            }
            let mut served = Vec::new();
            let mut gain = 0.0;
            for (&s, &after) in per {
                let now = current[s];
                let passes = w.base[s] >= w.min_cost && after <= now * (1.0 - w.min_saving);
                if passes {
                    gain += w.calls[s].max(1) as f64 * (now - after);
                    served.push((s, now, after));
                }
            }
            let writes = w.writes.get(&candidates[k].table).copied().unwrap_or(0);
            let benefit = gain - writes as f64 * w.write_cost;
            let better = best.as_ref().is_none_or(|b| {
                benefit > b.benefit
                    || (benefit == b.benefit
                        && candidates[k].keys.len() < candidates[b.candidate].keys.len())
            });
            if !served.is_empty() && benefit > 0.0 && better {
                served.sort_by_key(|x| x.0);
                best = Some(Pick {
                    candidate: k,
                    served,
                    benefit,
                });
            }
        }
        let Some(pick) = best else {
            break;
        };
        taken[pick.candidate] = true;
        for &(s, _, after) in &pick.served {
            current[s] = current[s].min(after);
        }
        picks.push(pick);
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(table: &str, keys: &[&str]) -> IndexDef {
        IndexDef {
            table: table.into(),
            method: Method::Btree,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            opclass: None,
            include: vec![],
            predicate: None,
        }
    }

    #[test]
    fn greedy_takes_the_biggest_saving_and_skips_what_it_already_covers() {
        let cands = [def("t", &["a"]), def("t", &["a", "b"]), def("u", &["c"])];
        // statement 0 on t (base 1000), statement 1 on u (base 50: under min_cost).
        let costs = vec![
            HashMap::from([(0, 400.0)]),
            HashMap::from([(0, 10.0)]),
            HashMap::from([(1, 5.0)]),
        ];
        let writes = HashMap::new();
        let w = Weights {
            calls: &[100, 1000],
            base: &[1000.0, 50.0],
            writes: &writes,
            write_cost: 1.0,
            min_cost: 100.0,
            min_saving: 0.5,
            max_indexes: 10,
        };
        let picks = select(&cands, &costs, &w);
        assert_eq!(picks.len(), 1, "{picks:?}");
        assert_eq!(picks[0].candidate, 1);
        assert_eq!(picks[0].served, vec![(0, 1000.0, 10.0)]);
    }

    #[test]
    fn writes_can_outweigh_a_saving() {
        let cands = [def("t", &["a"])];
        let costs = vec![HashMap::from([(0, 100.0)])];
        let writes = HashMap::from([("t".to_string(), 1_000_000)]);
        let w = Weights {
            calls: &[10],
            base: &[1000.0],
            writes: &writes,
            write_cost: 1.0,
            min_cost: 100.0,
            min_saving: 0.5,
            max_indexes: 10,
        };
        assert!(select(&cands, &costs, &w).is_empty());
    }
}
