//! The `[cache]` section of `proxy.toml`: mode, memory bounds, TTLs, rules, and the
//! invalidation channel's lag bound, with their defaults and validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the result cache may store. The default is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Nothing is cached; no listener runs.
    #[default]
    Off,
    /// Only statements a `[[cache.rules]]` entry (or a hint) matches.
    Rules,
    /// Every eligible SELECT whose tables are covered by invalidation, with `default_ttl`.
    Auto,
}

/// `[cache]`: see `proxy.toml` for the annotated sample.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `off` (default), `rules` or `auto`.
    pub mode: CacheMode,
    /// Bytes all entries together may hold (keys and stored messages); 64 MiB.
    pub max_bytes: u64,
    /// A response larger than this is never stored; 1 MiB.
    pub max_entry_bytes: usize,
    /// TTL in `auto` mode and for a rule or hint without one; 60 s.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// A notification older than this when it arrives (or a heartbeat that does not
    /// arrive within it) means the channel lags: flush the database and serve from the
    /// server until it is current again; 1 s.
    #[serde(with = "humantime_serde")]
    pub notify_lag_bound: Duration,
    /// How long followers of an identical miss wait for the leader's bytes before they
    /// go to the server themselves; 2 s.
    #[serde(with = "humantime_serde")]
    pub coalesce_wait: Duration,
    /// In `auto` mode, statements whose upstream time is below this are not worth a
    /// slot (admission by cost); 0 admits everything.
    #[serde(with = "humantime_serde")]
    pub min_upstream_time: Duration,
    /// What `rules` mode caches; also narrows TTLs in `auto` mode.
    pub rules: Vec<CacheRule>,
}

/// One `[[cache.rules]]` entry: exactly one of `table`, `fingerprint` or `prefix`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// A table (`name` or `schema.name`) the statement reads.
    pub table: Option<String>,
    /// A statement fingerprint, 16 hex digits as `/api/queries` shows them.
    pub fingerprint: Option<String>,
    /// The statement text starts with this (after leading whitespace and comments).
    pub prefix: Option<String>,
    /// How long an entry is fresh; `default_ttl` when unset.
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// After the TTL, an entry may still be served this long while one refill runs.
    #[serde(default, with = "humantime_serde")]
    pub stale_while_revalidate: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: CacheMode::Off,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            default_ttl: Duration::from_secs(60),
            notify_lag_bound: Duration::from_secs(1),
            coalesce_wait: Duration::from_secs(2),
            min_upstream_time: Duration::ZERO,
            rules: Vec::new(),
        }
    }
}

impl CacheConfig {
    /// Checks what serde cannot; the error is `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: &str| Err((format!("cache.{key}"), reason.to_string()));
        if self.max_bytes < 1024 {
            return bad("max_bytes", "must be at least 1024");
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes as u64 > self.max_bytes {
            return bad("max_entry_bytes", "must be between 1 and max_bytes");
        }
        if self.default_ttl.is_zero() {
            return bad("default_ttl", "must be more than 0s");
        }
        if self.notify_lag_bound < Duration::from_millis(10) {
            return bad("notify_lag_bound", "must be at least 10ms");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate()
                .map_err(|reason| (format!("cache.rules[{i}]"), reason.to_string()))?;
        }
        Ok(())
    }
}

impl CacheRule {
    fn validate(&self) -> Result<(), &'static str> {
        let set = [
            self.table.is_some(),
            self.fingerprint.is_some(),
            self.prefix.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err("needs exactly one of table, fingerprint or prefix");
        }
        if let Some(fp) = &self.fingerprint {
            if fp.len() != 16 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err("fingerprint must be 16 hex digits");
            }
        }
        if self.table.as_deref().is_some_and(str::is_empty)
            || self.prefix.as_deref().is_some_and(str::is_empty)
        {
            return Err("table and prefix must not be empty");
        }
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err("ttl must be more than 0s");
        }
        Ok(())
    }

    /// The fingerprint as a number, when the rule names one.
    pub fn fingerprint_value(&self) -> Option<u64> {
        u64::from_str_radix(self.fingerprint.as_deref()?, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CacheConfig, String> {
        let config: CacheConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|(k, r)| format!("{k}: {r}"))?;
        Ok(config)
    }

    #[test]
    fn defaults_are_off_and_bounded() {
        let c = parse("").unwrap();
        assert_eq!(c.mode, CacheMode::Off);
        assert_eq!(c.max_bytes, 64 << 20);
        assert_eq!(c.max_entry_bytes, 1 << 20);
    }

    #[test]
    fn rules_parse_with_ttls() {
        let c = parse(
            "mode = \"rules\"\n[[rules]]\ntable = \"public.templates\"\nttl = \"5m\"\n\
             [[rules]]\nprefix = \"SELECT count(*)\"\nttl = \"1m\"\nstale_while_revalidate = \"10s\"\n\
             [[rules]]\nfingerprint = \"00ff00ff00ff00ff\"\n",
        )
        .unwrap();
        assert_eq!(c.mode, CacheMode::Rules);
        assert_eq!(c.rules[0].ttl, Some(Duration::from_secs(300)));
        assert_eq!(
            c.rules[1].stale_while_revalidate,
            Some(Duration::from_secs(10))
        );
        assert_eq!(c.rules[2].fingerprint_value(), Some(0x00ff00ff00ff00ff));
    }

    #[test]
    fn bad_values_name_the_key() {
        assert!(parse("mode = \"sometimes\"").is_err());
        assert!(parse("max_byte = 5").unwrap_err().contains("unknown field"));
        assert!(parse("max_entry_bytes = 0")
            .unwrap_err()
            .starts_with("cache.max_entry_bytes"));
        assert!(parse("[[rules]]\ntable = \"t\"\nprefix = \"x\"")
            .unwrap_err()
            .starts_with("cache.rules[0]"));
        assert!(parse("[[rules]]\nfingerprint = \"xyz\"").is_err());
        assert!(parse("[[rules]]\ntable = \"t\"\nttl = \"0s\"").is_err());
        assert!(parse("notify_lag_bound = \"1ms\"").is_err());
    }
}
