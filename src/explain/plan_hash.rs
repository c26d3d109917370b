//! The plan hash: a digest of a plan's shape, so "the plan changed" is a string compare.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The plan-node fields that make up its shape. Everything else (costs, row counts,
/// widths, timings, buffers, workers, and the Filter/Cond expressions, which contain
/// parameter values) is left out.
const SHAPE_KEYS: &[&str] = &[
    "Node Type",
    "Parent Relationship",
    "Subplan Name",
    "CTE Name",
    "Relation Name",
    "Schema",
    "Function Name",
    "Index Name",
    "Join Type",
    "Strategy",
    "Partial Mode",
    "Operation",
    "Command",
    "Scan Direction",
    "Parallel Aware",
];

/// 16 lower-case hex digits identifying the shape of an EXPLAIN `FORMAT JSON` output (the
/// whole array, or one `{"Plan": ...}` object, or a plan node): node types, relations,
/// indexes, join types, strategies, parent relationships, scan directions, subplan and
/// CTE names, and children, recursively. Stable across processes and versions of this
/// crate's dependencies (SHA-256 of a canonical encoding).
pub fn plan_hash(explain: &Value) -> String {
    let mut hasher = Sha256::new();
    match explain {
        Value::Array(queries) => {
            for query in queries {
                hash_query(&mut hasher, query);
            }
        }
        other => hash_query(&mut hasher, other),
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn hash_query(hasher: &mut Sha256, query: &Value) {
    let node = query.get("Plan").unwrap_or(query);
    hash_node(hasher, node);
}

/// Canonical encoding: `(` key `=` value `;` ... children `)`, every string length-prefixed
/// so no two shapes encode the same.
fn hash_node(hasher: &mut Sha256, node: &Value) {
    hasher.update(b"(");
    for key in SHAPE_KEYS {
        let Some(value) = node.get(key) else {
            continue;
        };
        put(hasher, key);
        match value {
            Value::String(s) => put(hasher, s),
            other => put(hasher, &other.to_string()),
        }
    }
    if let Some(children) = node.get("Plans").and_then(Value::as_array) {
        for child in children {
            hash_node(hasher, child);
        }
    }
    hasher.update(b")");
}

fn put(hasher: &mut Sha256, s: &str) {
    hasher.update((s.len() as u64).to_le_bytes());
    hasher.update(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn plan(scan: Value) -> Value {
        json!([{
            "Plan": {
                "Node Type": "Sort", "Startup Cost": 10.5, "Total Cost": 11.0,
                "Plan Rows": 3, "Sort Key": ["t.a"],
                "Plans": [scan],
            },
            "Planning Time": 0.1,
        }])
    }

    fn seq(cost: f64, filter: &str) -> Value {
        json!({
            "Node Type": "Seq Scan", "Parent Relationship": "Outer",
            "Relation Name": "t", "Alias": "t", "Total Cost": cost,
            "Plan Rows": 7, "Filter": filter,
        })
    }

    #[test]
    fn costs_timings_and_values_do_not_change_the_hash() {
        let a = plan_hash(&plan(seq(1.0, "(a = 1)")));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let mut analyzed = plan(seq(99.0, "(a = 42)"));
        analyzed[0]["Execution Time"] = json!(12.5);
        analyzed[0]["Plan"]["Actual Rows"] = json!(2);
        analyzed[0]["Plan"]["Shared Hit Blocks"] = json!(20);
        assert_eq!(a, plan_hash(&analyzed));
        // A single plan object hashes like the array that holds it.
        assert_eq!(a, plan_hash(&plan(seq(5.0, "x"))[0]));
    }

    #[test]
    fn shape_changes_change_the_hash() {
        let base = plan_hash(&plan(seq(1.0, "(a = 1)")));
        let index = json!({
            "Node Type": "Index Scan", "Parent Relationship": "Outer",
            "Scan Direction": "Forward", "Index Name": "t_a_idx",
            "Relation Name": "t", "Total Cost": 1.0, "Index Cond": "(a = 1)",
        });
        assert_ne!(base, plan_hash(&plan(index.clone())));
        let mut other_index = index.clone();
        other_index["Index Name"] = json!("t_a_b_idx");
        assert_ne!(
            plan_hash(&plan(index.clone())),
            plan_hash(&plan(other_index))
        );
        let mut backward = index.clone();
        backward["Scan Direction"] = json!("Backward");
        assert_ne!(plan_hash(&plan(index)), plan_hash(&plan(backward)));
        let mut other_table = seq(1.0, "(a = 1)");
        other_table["Relation Name"] = json!("u");
        assert_ne!(base, plan_hash(&plan(other_table)));
        // The same node without its parent is another shape.
        assert_ne!(base, plan_hash(&json!([{"Plan": seq(1.0, "")}])));
    }
}
