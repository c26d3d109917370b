//! The admin console's cache commands: `SHOW CACHE` (one row per fingerprint, plus
//! the totals), `CACHE CLEAR` (everything), `CACHE CLEAR <table> [database]`,
//! `CACHE INSTALL [database]` and `CACHE UNINSTALL [database]`. Only admin users reach
//! the console, which is what makes clearing safe to offer here.

use std::sync::atomic::Ordering;

use super::reason::Source;
use crate::console::wire::{Cell, Kind, ResultSet};
use crate::state::Running;

/// A parsed cache command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheCommand {
    Show,
    /// `CACHE CLEAR [table [database]]`.
    Clear {
        table: Option<String>,
        database: Option<String>,
    },
    Install(Option<String>),
    Uninstall(Option<String>),
}

/// Parses the words after `CACHE`.
pub fn parse(words: &[String]) -> Option<CacheCommand> {
    let verb = words.first()?.to_ascii_lowercase();
    let arg = |i: usize| words.get(i).cloned();
    Some(match (verb.as_str(), words.len()) {
        ("clear", 1..=3) => CacheCommand::Clear {
            table: arg(1),
            database: arg(2),
        },
        ("install", 1 | 2) => CacheCommand::Install(arg(1)),
        ("uninstall", 1 | 2) => CacheCommand::Uninstall(arg(1)),
        _ => return None,
    })
}

/// Runs one command; the error is `(SQLSTATE, message)`.
pub async fn run(
    shared: &Running,
    command: CacheCommand,
) -> Result<ResultSet, (&'static str, String)> {
    let message = match command {
        CacheCommand::Show => return Ok(show(shared)),
        CacheCommand::Clear { table: None, .. } => {
            shared.cache.invalidate_all(Source::Admin);
            "cache cleared".to_string()
        }
        CacheCommand::Clear {
            table: Some(table),
            database,
        } => super::api::clear_table(shared, database.as_deref(), &table)
            .await
            .map_err(|m| ("42P01", m))?,
        CacheCommand::Install(db) => super::api::install(shared, db.as_deref(), true)
            .await
            .map_err(|m| ("58000", m))?,
        CacheCommand::Uninstall(db) => super::api::install(shared, db.as_deref(), false)
            .await
            .map_err(|m| ("58000", m))?,
    };
    let mut rows = ResultSet::new(&[("result", Kind::Text)]);
    rows.push(vec![Cell::from(message)]);
    Ok(rows)
}

fn show(shared: &Running) -> ResultSet {
    let cache = &shared.cache;
    let mut rows = ResultSet::new(&[
        ("fingerprint", Kind::Text),
        ("hits", Kind::Int8),
        ("misses", Kind::Int8),
        ("bytes", Kind::Int8),
        ("saved_ms", Kind::Float8),
    ]);
    let (entries, bytes) = cache.size();
    let total = |name: String, hits: u64, misses: u64, bytes: u64| {
        vec![
            Cell::from(name),
            hits.into(),
            misses.into(),
            bytes.into(),
            Cell::Null,
        ]
    };
    let misses: u64 = cache
        .stats
        .misses
        .iter()
        .map(|m| m.load(Ordering::Relaxed))
        .sum();
    let hits = cache.stats.hits.load(Ordering::Relaxed);
    rows.push(total(
        format!("(all: {entries} entries)"),
        hits,
        misses,
        bytes,
    ));
    let mut shapes: Vec<_> = cache
        .stats
        .shapes
        .iter()
        .map(|s| {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            (
                *s.key(),
                load(&s.hits),
                load(&s.misses),
                load(&s.bytes),
                load(&s.saved_us),
            )
        })
        .collect();
    shapes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (fp, hits, misses, bytes, saved) in shapes.into_iter().take(100) {
        let mut row = total(format!("{fp:016x}"), hits, misses, bytes);
        row[4] = crate::console::wire::ms(saved as f64);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse(&words("clear")),
            Some(CacheCommand::Clear {
                table: None,
                database: None
            })
        );
        assert_eq!(
            parse(&words("CLEAR public.t app")),
            Some(CacheCommand::Clear {
                table: Some("public.t".into()),
                database: Some("app".into())
            })
        );
        assert_eq!(parse(&words("install")), Some(CacheCommand::Install(None)));
        assert_eq!(
            parse(&words("Uninstall db")),
            Some(CacheCommand::Uninstall(Some("db".into())))
        );
        assert_eq!(parse(&words("drop")), None);
        assert_eq!(parse(&words("install a b")), None);
    }
}
