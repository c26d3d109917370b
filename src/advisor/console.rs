//! The advisor's console commands: `SHOW ADVICE` (the last pass's CREATE and DROP
//! statements with reasons), `SHOW INDEXES` (drop candidates and health findings),
//! `SHOW INSIGHTS` (N+1 patterns), and `ADVISE` (run a pass now, then SHOW ADVICE).

use bytes::BytesMut;

use super::report::{hex_str, one_line, Report};
use super::Advisor;
use crate::console::wire::{Kind, ResultSet};

/// What the console dispatches here: `None` when `stmt` is not an advisor command,
/// else its answer or `(SQLSTATE, message)`.
pub async fn run(
    advisor: Option<&Advisor>,
    stmt: &str,
    out: &mut BytesMut,
) -> Option<Result<(), (&'static str, String)>> {
    let words: Vec<String> = stmt
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match words.as_slice() {
        ["show", "advice"] => 0,
        ["show", "indexes"] => 1,
        ["show", "insights"] => 2,
        ["advise"] => 3,
        _ => return None,
    };
    let Some(advisor) = advisor else {
        return Some(Err((
            "55000",
            "the advisor is off ([advisor] enabled = false, or stats = false)".into(),
        )));
    };
    if command == 3 {
        if let Err(e) = advisor.run_pass().await {
            return Some(Err(("55000", e.to_string())));
        }
    }
    let rs = match command {
        2 => insights(advisor),
        _ => {
            let Some(report) = advisor.report() else {
                return Some(Err(("55000", "no advisor pass yet: run ADVISE".into())));
            };
            if command == 1 {
                indexes(&report)
            } else {
                advice(&report)
            }
        }
    };
    rs.encode(out);
    Some(Ok(()))
}

fn advice(r: &Report) -> ResultSet {
    let mut rs = ResultSet::new(&[
        ("database", Kind::Text),
        ("action", Kind::Text),
        ("statement", Kind::Text),
        ("validated", Kind::Text),
        ("estimated_saving_pct", Kind::Float8),
        ("measured_p95_before_ms", Kind::Float8),
        ("measured_p95_after_ms", Kind::Float8),
        ("serves", Kind::Text),
        ("reason", Kind::Text),
    ]);
    for s in &r.suggestions {
        let before = s
            .serves
            .iter()
            .filter_map(|v| v.measured_before)
            .map(|m| m.p95_ms)
            .fold(None, max);
        let after = s
            .serves
            .iter()
            .filter_map(|v| v.measured_after)
            .map(|m| m.p95_ms)
            .fold(None, max);
        let serves: Vec<String> = s.serves.iter().map(|v| hex_str(v.fingerprint)).collect();
        let reason = match &s.label {
            Some(l) => format!("{} ({l})", s.reason),
            None => s.reason.clone(),
        };
        rs.push(vec![
            s.database.as_str().into(),
            "create".into(),
            s.sql.as_str().into(),
            s.validated.to_string().into(),
            format!("{:.1}", s.estimated_saving * 100.0).into(),
            before.map(|v| format!("{v:.3}")).into(),
            after.map(|v| format!("{v:.3}")).into(),
            serves.join(",").into(),
            reason.into(),
        ]);
    }
    for d in &r.drops {
        rs.push(vec![
            d.database.as_str().into(),
            "drop".into(),
            d.sql.as_str().into(),
            d.confirmed.to_string().into(),
            crate::console::wire::Cell::Null,
            crate::console::wire::Cell::Null,
            crate::console::wire::Cell::Null,
            crate::console::wire::Cell::Null,
            format!("{}: {}", d.reason, d.evidence).into(),
        ]);
    }
    rs
}

fn max(acc: Option<f64>, v: f64) -> Option<f64> {
    Some(acc.map_or(v, |a| a.max(v)))
}

fn indexes(r: &Report) -> ResultSet {
    let mut rs = ResultSet::new(&[
        ("database", Kind::Text),
        ("object", Kind::Text),
        ("finding", Kind::Text),
        ("detail", Kind::Text),
        ("size_bytes", Kind::Int8),
    ]);
    for d in &r.drops {
        rs.push(vec![
            d.database.as_str().into(),
            d.index.as_str().into(),
            d.reason.into(),
            d.evidence.as_str().into(),
            d.size_bytes.into(),
        ]);
    }
    for f in &r.findings {
        rs.push(vec![
            f.database.as_str().into(),
            f.object.as_str().into(),
            f.kind.into(),
            f.detail.as_str().into(),
        ]);
    }
    rs
}

fn insights(advisor: &Advisor) -> ResultSet {
    let mut rs = ResultSet::new(&[
        ("database", Kind::Text),
        ("fingerprint", Kind::Text),
        ("source", Kind::Text),
        ("occurrences", Kind::Int8),
        ("executions", Kind::Int8),
        ("time_ms", Kind::Float8),
        ("query", Kind::Text),
    ]);
    for p in advisor.patterns() {
        let query = advisor
            .query_text(&p.database, p.fingerprint)
            .unwrap_or_default();
        rs.push(vec![
            p.database.as_str().into(),
            hex_str(p.fingerprint).into(),
            hex_str(p.source).into(),
            p.occurrences.into(),
            p.executions.into(),
            format!("{:.3}", p.time_ms).into(),
            one_line(&query, 200).into(),
        ]);
    }
    rs
}
