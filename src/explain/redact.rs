//! Captured plans without the client's values: with `explain_store_params = false` (the
//! default) every constant in the plan's expressions (Filter, Index Cond, Output, Sort
//! Key, ...) is replaced by `?` before the plan is stored or shown; casts keep the types.

use serde_json::Value;

use crate::query::redact_literals;

/// Keys whose values are names the planner chose, not expressions: kept as they are.
const NAMES: &[&str] = &[
    "Node Type",
    "Parent Relationship",
    "Relation Name",
    "Schema",
    "Alias",
    "Index Name",
    "Strategy",
    "Partial Mode",
    "Join Type",
    "Scan Direction",
    "Operation",
    "Sort Method",
    "Sort Space Type",
    "Subplan Name",
    "CTE Name",
    "Function Name",
    "Trigger Name",
    "Constraint Name",
];

/// Replaces every constant in `plan`'s expression texts, in place.
pub fn redact_plan(plan: &mut Value) {
    match plan {
        Value::Array(items) => items.iter_mut().for_each(redact_plan),
        Value::Object(fields) => {
            for (key, value) in fields.iter_mut() {
                if !NAMES.contains(&key.as_str()) {
                    redact_plan(value);
                }
            }
        }
        Value::String(text) => *text = redact_literals(text),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn constants_go_names_and_numbers_stay() {
        let mut plan = json!([{"Plan": {
            "Node Type": "Index Scan", "Index Name": "t_pkey", "Relation Name": "t",
            "Index Cond": "(id = 4242)", "Filter": "((s)::text = 'hunter2'::text)",
            "Output": ["id", "'hunter2'::text"], "Total Cost": 8.27,
            "Subplan Name": "InitPlan 1 (returns $0)"
        }}]);
        redact_plan(&mut plan);
        let text = plan.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("4242"),
            "{text}"
        );
        assert_eq!(plan[0]["Plan"]["Filter"], "((s)::text = ?::text)");
        assert_eq!(plan[0]["Plan"]["Index Name"], "t_pkey");
        assert_eq!(plan[0]["Plan"]["Subplan Name"], "InitPlan 1 (returns $0)");
        assert_eq!(plan[0]["Plan"]["Total Cost"], 8.27);
    }
}
