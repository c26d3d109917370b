//! What a pass produces and every output shows (`/api/advice`, `SHOW ADVICE`,
//! `SHOW INDEXES`, `pgsidecar advise`): suggested indexes with their reasons and
//! evidence, drop candidates, index health, and how each database was analysed.

use serde::{Serialize, Serializer};

use super::candidates::IndexDef;
use super::watch::Measured;

/// Fingerprints print as 16 hex digits everywhere.
pub fn hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:016x}"))
}

/// A statement an index serves, with the planner's estimate and the proxy's measure.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
    pub query: String,
    pub calls: u64,
    pub cost_before: f64,
    pub cost_after: Option<f64>,
    /// Measured before the index appeared, and after (closed loop).
    pub measured_before: Option<Measured>,
    pub measured_after: Option<Measured>,
}

/// A suggested index.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub database: String,
    pub name: String,
    pub index: IndexDef,
    pub sql: String,
    /// Costed with HypoPG on the sampled values; false for heuristics.
    pub validated: bool,
    /// "heuristic, not validated: <why>" when not validated.
    pub label: Option<String>,
    pub reason: String,
    pub serves: Vec<Served>,
    /// Planner cost saved, summed over the statements weighted by their calls.
    pub estimated_benefit: f64,
    /// Mean cost saving over the statements served, 0..1.
    pub estimated_saving: f64,
    pub size_bytes: Option<i64>,
    /// When the index was seen in the catalog (unix ms), and under which name.
    pub applied_at_ms: Option<i64>,
    pub applied_as: Option<String>,
}

/// An index that may be dropped.
#[derive(Debug, Clone, Serialize)]
pub struct DropCandidate {
    pub database: String,
    pub table: String,
    pub index: String,
    /// `unused`, `duplicate` or `invalid`.
    pub reason: &'static str,
    pub evidence: String,
    pub sql: String,
    pub size_bytes: i64,
    /// False while the observation is shorter than `unused_after`.
    pub confirmed: bool,
}

/// A finding about a table or index that is not a create/drop statement.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub database: String,
    /// `seq_scans`, `hit_rate`, `vacuum`, `analyze`.
    pub kind: &'static str,
    pub object: String,
    pub detail: String,
}

/// How one database was analysed.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseRun {
    pub database: String,
    pub hypopg: bool,
    /// Why suggestions are heuristic there, when they are.
    pub fallback: Option<String>,
    pub statements_sampled: usize,
    pub statements_costed: usize,
    pub candidates: usize,
    /// Seconds of index-usage history behind the drop candidates.
    pub observed_secs: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub at_ms: i64,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub databases: Vec<DatabaseRun>,
    pub suggestions: Vec<Suggestion>,
    pub drops: Vec<DropCandidate>,
    pub findings: Vec<Finding>,
}

/// `pgsidecar advise`'s text: CREATE statements with reasons and evidence, then DROP
/// candidates, then the other findings; every line that is not SQL is a comment.
#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
pub fn script(r: &Report) -> String {
    let mut out = format!(
        "-- pgsidecar index advice: pass at {} took {} ms{}\n",
        crate::timefmt::rfc3339_ms(crate::timefmt::from_unix_ms(r.at_ms)),
        r.duration_ms,
        if r.timed_out {
            " (timed out: partial)"
        } else {
            ""
        }
    );
    out.push_str("-- Nothing here has been run: review, then apply by hand.\n");
    for d in &r.databases {
        out.push_str(&format!(
            "-- database {}: HypoPG {}, {} statements sampled, {} costed, {} candidates{}\n",
            d.database,
            if d.hypopg {
                "available"
            } else {
                "NOT available"
            },
            d.statements_sampled,
            d.statements_costed,
            d.candidates,
            d.fallback
                .as_ref()
                .map(|f| format!("; {f}"))
                .unwrap_or_default()
        ));
        if let Some(e) = &d.error {
            out.push_str(&format!("--   error: {e}\n"));
        }
    }
    for s in &r.suggestions {
        out.push_str(&format!("\n-- [{}] {}\n", s.database, s.reason));
        if let Some(l) = &s.label {
            out.push_str(&format!("-- {l}\n"));
        }
        out.push_str(&format!(
            "-- estimated saving {:.0}% (benefit {:.0} cost units), size {}\n",
            s.estimated_saving * 100.0,
            s.estimated_benefit,
            s.size_bytes.map_or("unknown".into(), size)
        ));
        for v in &s.serves {
            out.push_str(&served_line(v));
        }
        if let Some(name) = &s.applied_as {
            out.push_str(&format!("-- applied: present as {name}\n"));
        }
        out.push_str(&s.sql);
        out.push('\n');
    }
    for d in &r.drops {
        out.push_str(&format!(
            "\n-- [{}] {} index on {}: {}{}\n{}\n",
            d.database,
            d.reason,
            d.table,
            d.evidence,
            if d.confirmed {
                ""
            } else {
                " (not yet confirmed)"
            },
            d.sql
        ));
    }
    for f in &r.findings {
        out.push_str(&format!(
            "\n-- [{}] {} {}: {}",
            f.database, f.kind, f.object, f.detail
        ));
    }
    if !r.findings.is_empty() {
        out.push('\n');
    }
    out
}

fn served_line(v: &Served) -> String {
    let after = v.cost_after.map_or("?".into(), |c| format!("{c:.1}"));
    let mut line = format!(
        "--   serves {} ({} calls, cost {:.1} -> {after}): {}\n",
        hex_str(v.fingerprint),
        v.calls,
        v.cost_before,
        one_line(&v.query, 100)
    );
    if let (Some(b), Some(a)) = (v.measured_before, v.measured_after) {
        if a.calls > 0 {
            line.push_str(&format!(
                "--     measured p50 {:.2} -> {:.2} ms, p95 {:.2} -> {:.2} ms ({} / {} calls)\n",
                b.p50_ms, a.p50_ms, b.p95_ms, a.p95_ms, b.calls, a.calls
            ));
        }
    }
    line
}

pub fn hex_str(v: u64) -> String {
    format!("{v:016x}")
}

pub fn size(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} kB", b / 1024),
    }
}

pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
