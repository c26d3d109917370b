//! How long an eligible statement may be cached: the mode, the first matching
//! `[[cache.rules]]` entry, and the statement's hint. A hint only narrows: `nocache`
//! always wins, and a hint's TTL never lengthens a rule's or the default.

use std::time::Duration;

use super::config::{CacheConfig, CacheMode, CacheRule};
use super::syntax::Hint;

/// TTL and stale-while-revalidate window of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub ttl: Duration,
    pub stale_while_revalidate: Duration,
}

/// What the rules see of a statement.
pub struct Statement<'a> {
    pub text: &'a str,
    pub fingerprint: u64,
    /// `schema.name` of the tables it reads.
    pub tables: &'a [String],
    pub hint: Hint,
}

/// The lifetime of `stmt`'s entries, or `None` when it is not to be cached.
pub fn lifetime(config: &CacheConfig, stmt: &Statement<'_>) -> Option<Lifetime> {
    if stmt.hint == Hint::NoCache || config.mode == CacheMode::Off {
        return None;
    }
    let rule = config.rules.iter().find(|r| matches(r, stmt));
    let base = match (config.mode, rule) {
        (_, Some(rule)) => Lifetime {
            ttl: rule.ttl.unwrap_or(config.default_ttl),
            stale_while_revalidate: rule.stale_while_revalidate.unwrap_or_default(),
        },
        (CacheMode::Auto, None) | (CacheMode::Rules, None) if stmt.hint != Hint::None => Lifetime {
            ttl: config.default_ttl,
            stale_while_revalidate: Duration::ZERO,
        },
        (CacheMode::Auto, None) => Lifetime {
            ttl: config.default_ttl,
            stale_while_revalidate: Duration::ZERO,
        },
        _ => return None,
    };
    match stmt.hint {
        Hint::Cache(Some(ttl)) => Some(Lifetime {
            ttl: ttl.min(base.ttl),
            ..base
        }),
        _ => Some(base),
    }
}

fn matches(rule: &CacheRule, stmt: &Statement<'_>) -> bool {
    if let Some(table) = &rule.table {
        return stmt.tables.iter().any(|t| same_table(table, t));
    }
    if let Some(fp) = rule.fingerprint_value() {
        return fp == stmt.fingerprint;
    }
    match &rule.prefix {
        Some(prefix) => {
            let text = skip_comments(stmt.text);
            text.len() >= prefix.len()
                && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        }
        None => false,
    }
}

/// `templates` matches `public.templates` (any schema); `s.t` matches only `s.t`.
fn same_table(rule: &str, qualified: &str) -> bool {
    match rule.contains('.') {
        true => rule == qualified,
        false => qualified.rsplit_once('.').is_some_and(|(_, n)| n == rule),
    }
}

fn skip_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        match text
            .strip_prefix("/*")
            .and_then(|b| b.find("*/").map(|e| &b[e + 2..]))
        {
            Some(rest) => text = rest,
            None => return text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: CacheMode, rules: Vec<CacheRule>) -> CacheConfig {
        CacheConfig {
            mode,
            rules,
            ..CacheConfig::default()
        }
    }

    fn stmt<'a>(text: &'a str, tables: &'a [String], hint: Hint) -> Statement<'a> {
        Statement {
            text,
            fingerprint: 0xab,
            tables,
            hint,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn rules_mode_caches_only_what_a_rule_or_hint_names() {
        let rules = vec![
            CacheRule {
                table: Some("templates".into()),
                ttl: Some(secs(300)),
                ..CacheRule::default()
            },
            CacheRule {
                prefix: Some("select count(*)".into()),
                ttl: Some(secs(60)),
                stale_while_revalidate: Some(secs(10)),
                ..CacheRule::default()
            },
        ];
        let c = config(CacheMode::Rules, rules);
        let t = ["public.templates".to_string()];
        let other = ["public.other".to_string()];
        let l = lifetime(&c, &stmt("SELECT * FROM templates", &t, Hint::None)).unwrap();
        assert_eq!(l.ttl, secs(300));
        let l = lifetime(
            &c,
            &stmt("/* x */ SELECT COUNT(*) FROM other", &other, Hint::None),
        );
        assert_eq!(l.unwrap().stale_while_revalidate, secs(10));
        assert_eq!(
            lifetime(&c, &stmt("SELECT 1 FROM other", &other, Hint::None)),
            None
        );
        let hinted = stmt("SELECT 1 FROM other", &other, Hint::Cache(Some(secs(5))));
        assert_eq!(lifetime(&c, &hinted).unwrap().ttl, secs(5));
        let nocache = stmt("SELECT * FROM templates", &t, Hint::NoCache);
        assert_eq!(lifetime(&c, &nocache), None);
    }

    #[test]
    fn hints_never_lengthen_and_off_caches_nothing() {
        let c = config(CacheMode::Auto, vec![]);
        let t = ["s.t".to_string()];
        let long = stmt("SELECT 1", &t, Hint::Cache(Some(secs(3600))));
        assert_eq!(lifetime(&c, &long).unwrap().ttl, c.default_ttl);
        assert_eq!(
            lifetime(&c, &stmt("SELECT 1", &t, Hint::None)).unwrap().ttl,
            c.default_ttl
        );
        let off = config(CacheMode::Off, vec![]);
        assert_eq!(
            lifetime(&off, &stmt("SELECT 1", &t, Hint::Cache(None))),
            None
        );
        assert!(same_table("s.t", "s.t") && !same_table("x.t", "s.t"));
    }
}
