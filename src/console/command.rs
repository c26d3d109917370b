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
}

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
    /// Top statement shapes over a window (`all` by default).
    Queries(Window),
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
        (Some("show"), 2 | 3) => Command::Show(show(&words[1..]).ok_or_else(invalid)?),
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
        let window = match words.get(1) {
            Some(w) => w.to_ascii_lowercase().parse().ok()?,
            None => Window::All,
        };
        return Some(Show::Queries(window));
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
        assert_eq!(
            parse("SHOW QUERIES"),
            Ok(Command::Show(Show::Queries(Window::All)))
        );
        assert_eq!(
            parse("show queries 5M"),
            Ok(Command::Show(Show::Queries(Window::Min5)))
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
