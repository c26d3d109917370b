//! Console commands: splitting a Query string into statements and parsing each one
//! (`SHOW POOLS`, `PAUSE mydb`, `RELOAD` …), case-insensitively, as PgBouncer does:
//! a command word and at most one argument (two for `SHOW`), bare or double-quoted.

use crate::stats::Window;

/// A parsed console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Show(Show),
    /// PAUSE [db]: `None` pauses every pool.
    Pause(Option<String>),
    /// RESUME [db]: `None` resumes every pool.
    Resume(Option<String>),
    Reload,
    Shutdown,
    /// EXPLAIN FINGERPRINT <16 hex digits> [database]: a capture now, with the shape's
    /// last sampled values.
    ExplainFingerprint {
        fingerprint: u64,
        database: Option<String>,
    },
    /// SHOW CACHE, CACHE CLEAR [table [db]], CACHE INSTALL|UNINSTALL [db].
    Cache(crate::cache::console::CacheCommand),
}

/// What `SHOW QUERIES` lists: `[window] [BY key] [LIMIT n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryListing {
    pub window: Window,
    pub by: QueryOrder,
    pub limit: usize,
}

/// `SHOW QUERIES … BY <key>`, high to low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOrder {
    Total,
    Calls,
    Mean,
    P50,
    P95,
    P99,
    Max,
    Errors,
    Rows,
}

impl QueryOrder {
    const NAMES: [(&'static str, QueryOrder); 10] = [
        ("total", QueryOrder::Total),
        ("total_time", QueryOrder::Total),
        ("calls", QueryOrder::Calls),
        ("mean", QueryOrder::Mean),
        ("p50", QueryOrder::P50),
        ("p95", QueryOrder::P95),
        ("p99", QueryOrder::P99),
        ("max", QueryOrder::Max),
        ("errors", QueryOrder::Errors),
        ("rows", QueryOrder::Rows),
    ];

    fn parse(word: &str) -> Option<QueryOrder> {
        let word = word.to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == word)
            .map(|(_, k)| *k)
    }
}

/// Rows `SHOW QUERIES` shows without `LIMIT`, and the most it shows with one.
pub const DEFAULT_QUERY_ROWS: usize = 50;
pub const MAX_QUERY_ROWS: usize = 1000;

/// What `SHOW` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Pools,
    Stats,
    StatsTotals,
    Lists,
    Clients,
    Servers,
    Databases,
    Config,
    Version,
    Help,
    /// Top statement shapes over a window (`all` by default), sorted and limited.
    Queries(QueryListing),
    /// Captured plans, newest first, optionally of one fingerprint.
    Plans(Option<u64>),
    /// The latest slow executions, alerts and background jobs.
    Slow,
    Alerts,
    Jobs,
}

/// Splits a Query string into statements at `;` outside quotes; empty ones are dropped.
pub fn split(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in sql.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, ';') => {
                out.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&sql[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses one statement. The error is the message for SQLSTATE 42601.
pub fn parse(stmt: &str) -> Result<Command, String> {
    let invalid = || format!("invalid command '{stmt}', use SHOW HELP;");
    let words = tokens(stmt).ok_or_else(invalid)?;
    let word = |i: usize| words.get(i).map(|w| w.to_ascii_lowercase());
    let arg = words.get(1).cloned();
    let command = match (word(0).as_deref(), words.len()) {
        (Some("show"), 2) if word(1).as_deref() == Some("cache") => {
            Command::Cache(crate::cache::console::CacheCommand::Show)
        }
        (Some("cache"), 2..) => {
            Command::Cache(crate::cache::console::parse(&words[1..]).ok_or_else(invalid)?)
        }
        (Some("show"), 2..) => Command::Show(show(&words[1..]).ok_or_else(invalid)?),
        (Some("explain"), 3 | 4) if word(1).as_deref() == Some("fingerprint") => {
            Command::ExplainFingerprint {
                fingerprint: fingerprint(&words[2]).ok_or_else(invalid)?,
                database: words.get(3).cloned(),
            }
        }
        (Some("pause"), 1 | 2) => Command::Pause(arg),
        (Some("resume"), 1 | 2) => Command::Resume(arg),
        (Some("reload"), 1) => Command::Reload,
        (Some("shutdown"), 1) => Command::Shutdown,
        // Both of PgBouncer's waiting modes are the graceful drain here.
        (Some("shutdown"), 2)
            if matches!(
                word(1).as_deref(),
                Some("wait_for_clients" | "wait_for_servers")
            ) =>
        {
            Command::Shutdown
        }
        _ => return Err(invalid()),
    };
    Ok(command)
}

fn show(words: &[String]) -> Option<Show> {
    let subject = words.first()?.to_ascii_lowercase();
    if subject == "queries" {
        return queries(&words[1..]).map(Show::Queries);
    }
    if subject == "plans" && words.len() <= 2 {
        return match words.get(1) {
            Some(w) => Some(Show::Plans(Some(fingerprint(w)?))),
            None => Some(Show::Plans(None)),
        };
    }
    if words.len() > 1 {
        return None;
    }
    Some(match subject.as_str() {
        "pools" => Show::Pools,
        "stats" => Show::Stats,
        "stats_totals" => Show::StatsTotals,
        "lists" => Show::Lists,
        "clients" => Show::Clients,
        "servers" => Show::Servers,
        "databases" => Show::Databases,
        "config" => Show::Config,
        "version" => Show::Version,
        "help" => Show::Help,
        "slow" => Show::Slow,
        "alerts" => Show::Alerts,
        "jobs" => Show::Jobs,
        _ => return None,
    })
}

/// `[window] [BY key] [LIMIT n]`, in that order, each optional.
fn queries(words: &[String]) -> Option<QueryListing> {
    let mut rest = words.iter().map(|w| w.to_ascii_lowercase()).peekable();
    let mut listing = QueryListing {
        window: Window::All,
        by: QueryOrder::Total,
        limit: DEFAULT_QUERY_ROWS,
    };
    if let Some(w) = rest.next_if(|w| w != "by" && w != "limit") {
        listing.window = w.parse().ok()?;
    }
    if rest.next_if(|w| w == "by").is_some() {
        listing.by = QueryOrder::parse(&rest.next()?)?;
    }
    if rest.next_if(|w| w == "limit").is_some() {
        let n: usize = rest.next()?.parse().ok()?;
        listing.limit = n.clamp(1, MAX_QUERY_ROWS);
    }
    rest.next().is_none().then_some(listing)
}

/// Exactly 16 hex digits.
fn fingerprint(word: &str) -> Option<u64> {
    let ok = word.len() == 16 && word.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| u64::from_str_radix(word, 16).ok()).flatten()
}

/// Whitespace-separated words; a double-quoted word may hold anything (`""` is a quote).
/// `None` on an unterminated quote or a stray quote inside a bare word.
fn tokens(stmt: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = stmt.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Some(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.next_if_eq(&'"').is_some() => word.push('"'),
                    '"' => break,
                    c => word.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '"' || c == '\'' {
                    return None;
                }
                word.push(c);
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements() {
        assert_eq!(split("SHOW POOLS;"), vec!["SHOW POOLS"]);
        assert_eq!(
            split(" show pools ; show stats;; "),
            vec!["show pools", "show stats"]
        );
        assert_eq!(
            split("PAUSE \"a;b\"; RESUME"),
            vec!["PAUSE \"a;b\"", "RESUME"]
        );
        assert!(split(" ; ").is_empty());
        assert_eq!(split("'unterminated;"), vec!["'unterminated;"]);
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse("show POOLS"), Ok(Command::Show(Show::Pools)));
        assert_eq!(parse("SHOW\tversion"), Ok(Command::Show(Show::Version)));
        assert_eq!(
            parse("SHOW STATS_TOTALS"),
            Ok(Command::Show(Show::StatsTotals))
        );
        let listing =
            |window, by, limit| Command::Show(Show::Queries(QueryListing { window, by, limit }));
        assert_eq!(
            parse("SHOW QUERIES"),
            Ok(listing(Window::All, QueryOrder::Total, DEFAULT_QUERY_ROWS))
        );
        assert_eq!(
            parse("show queries 5M"),
            Ok(listing(Window::Min5, QueryOrder::Total, DEFAULT_QUERY_ROWS))
        );
        assert_eq!(
            parse("SHOW QUERIES 5m BY p95 LIMIT 5"),
            Ok(listing(Window::Min5, QueryOrder::P95, 5))
        );
        assert_eq!(
            parse("show queries by calls"),
            Ok(listing(Window::All, QueryOrder::Calls, DEFAULT_QUERY_ROWS))
        );
        assert_eq!(
            parse("show queries limit 3"),
            Ok(listing(Window::All, QueryOrder::Total, 3))
        );
        assert_eq!(parse("SHOW PLANS"), Ok(Command::Show(Show::Plans(None))));
        assert_eq!(
            parse("show plans 00000000000000Ff"),
            Ok(Command::Show(Show::Plans(Some(255))))
        );
        assert_eq!(
            parse("EXPLAIN FINGERPRINT 00000000000000ff app"),
            Ok(Command::ExplainFingerprint {
                fingerprint: 255,
                database: Some("app".into())
            })
        );
        assert_eq!(parse("PAUSE"), Ok(Command::Pause(None)));
        assert_eq!(parse("pause MyDb"), Ok(Command::Pause(Some("MyDb".into()))));
        assert_eq!(
            parse("RESUME \"my \"\"db\"\"\""),
            Ok(Command::Resume(Some("my \"db\"".into())))
        );
        assert_eq!(parse("reload"), Ok(Command::Reload));
        assert_eq!(parse("SHUTDOWN"), Ok(Command::Shutdown));
        assert_eq!(parse("shutdown wait_for_clients"), Ok(Command::Shutdown));
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "SELECT 1",
            "SHOW",
            "SHOW POOLS extra",
            "SHOW QUERIES 2m",
            "SHOW QUERIES all more",
            "SHOW QUERIES 5m BY slowest",
            "SHOW QUERIES LIMIT x",
            "SHOW QUERIES LIMIT 5 BY p95",
            "SHOW PLANS ff",
            "EXPLAIN FINGERPRINT",
            "EXPLAIN SELECT 1",
            "RELOAD now",
            "PAUSE a b",
            "SHUTDOWN NOW",
            "PAUSE \"unterminated",
            "PAUSE a\"b",
            "PAUSE \"a\"b",
            "SHOW nothing",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.starts_with("invalid command '"), "{err}");
        }
    }
}
