//! The `[advisor]` section: how index advice is gathered, validated and gated, and how
//! N+1 patterns are recognised. Every field has a documented default; `validate` runs
//! at load, so a bad value names its key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Index advisor and workload insights.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvisorConfig {
    /// Keep parameter samples, watch for N+1 patterns, and run advisor passes.
    pub enabled: bool,
    /// Bound-parameter sets (or simple-protocol texts) kept per fingerprint, in memory
    /// only (exported only with `explain_store_params`).
    pub samples_per_fingerprint: usize,
    /// Fingerprints whose samples are kept at most (the oldest shape is dropped).
    pub max_sampled_fingerprints: usize,
    /// Once a fingerprint has its samples, one execution in this many replaces the
    /// oldest, so the samples follow the workload.
    pub resample_every: u32,
    /// How often a pass runs in the background (health snapshot, closed loop); 0 s:
    /// only on request (`POST /api/advice/run`, `pgsidecar advise`).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest a whole pass may take; what is left is skipped and the output says so.
    #[serde(with = "humantime_serde")]
    pub pass_timeout: Duration,
    /// A statement is considered only when its planned cost is at least this
    /// (Dexter: 100).
    pub min_cost: f64,
    /// An index is suggested only when it cuts some statement's cost by at least this
    /// fraction (Dexter: 0.5).
    pub min_saving: f64,
    /// Most indexes suggested per pass.
    pub max_indexes: usize,
    /// Most key columns in a suggested btree index.
    pub max_columns: usize,
    /// Planner cost charged per write the proxy saw on the table, per extra index, in
    /// the greedy selection (indexes slow every INSERT, UPDATE and DELETE).
    pub write_cost: f64,
    /// An index with 0 scans over this long is unused (default 30 days).
    #[serde(with = "humantime_serde")]
    pub unused_after: Duration,
    /// Tables with at least this many rows read mostly by sequential scans are reported.
    pub seq_scan_min_rows: i64,
    /// Hit rate below this is reported (0.95 = 95%).
    pub hit_rate_target: f64,
    /// Executions of one fingerprint with different parameters in one transaction (or
    /// within `n_plus_one_window` outside one) that make an N+1 pattern.
    pub n_plus_one_threshold: u32,
    /// Outside transactions, statements further apart than this end a run.
    #[serde(with = "humantime_serde")]
    pub n_plus_one_window: Duration,
    /// Distinct N+1 patterns remembered (the least frequent are dropped).
    pub max_patterns: usize,
}

impl Default for AdvisorConfig {
    fn default() -> AdvisorConfig {
        AdvisorConfig {
            enabled: true,
            samples_per_fingerprint: 5,
            max_sampled_fingerprints: 2_000,
            resample_every: 256,
            interval: Duration::from_secs(60),
            pass_timeout: Duration::from_secs(60),
            min_cost: 100.0,
            min_saving: 0.5,
            max_indexes: 10,
            max_columns: 3,
            write_cost: 1.0,
            unused_after: Duration::from_secs(30 * 86_400),
            seq_scan_min_rows: 10_000,
            hit_rate_target: 0.95,
            n_plus_one_threshold: 5,
            n_plus_one_window: Duration::from_secs(1),
            max_patterns: 1_000,
        }
    }
}

impl AdvisorConfig {
    /// The first bad value as `(key, reason)`; the key is relative to `[advisor]`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let fraction = |key, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("{v} is not a fraction between 0 and 1")))
            }
        };
        fraction("min_saving", self.min_saving)?;
        fraction("hit_rate_target", self.hit_rate_target)?;
        let at_least_one = [
            ("samples_per_fingerprint", self.samples_per_fingerprint),
            ("max_sampled_fingerprints", self.max_sampled_fingerprints),
            ("max_indexes", self.max_indexes),
            ("max_columns", self.max_columns),
            ("max_patterns", self.max_patterns),
            ("resample_every", self.resample_every as usize),
        ];
        for (key, v) in at_least_one {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.n_plus_one_threshold < 2 {
            return Err(("n_plus_one_threshold", "must be at least 2".into()));
        }
        if !(self.min_cost >= 0.0 && self.write_cost >= 0.0) {
            return Err(("min_cost", "costs must not be negative".into()));
        }
        if self.pass_timeout.is_zero() {
            return Err(("pass_timeout", "must be more than 0 s".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_at_least_as_strict_as_dexter() {
        let c = AdvisorConfig::default();
        assert!(c.min_cost >= 100.0 && c.min_saving >= 0.5);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = AdvisorConfig {
            min_saving: 1.5,
            ..AdvisorConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "min_saving");
        let c = AdvisorConfig {
            n_plus_one_threshold: 1,
            ..AdvisorConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "n_plus_one_threshold");
        let parsed: Result<AdvisorConfig, _> = toml::from_str("min_cost = 50\nbogus = 1");
        assert!(parsed.is_err(), "unknown keys are refused");
    }
}
