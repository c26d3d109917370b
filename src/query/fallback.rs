//! Lexer-only analysis for statements pg_query cannot (or must not) parse, and the
//! literal scrubbing applied to every normalized text before it is stored.

use super::lexer::{Lexer, Token, TokenKind};
use super::Command;

/// Highest `$n` already in the text, so added placeholders do not collide with it.
fn max_param(text: &str) -> u32 {
    let mut lexer = Lexer::new(text);
    let mut max = 0u32;
    while let Some(tok) = lexer.next_token() {
        if tok.kind == TokenKind::Param {
            let digits = text.get(tok.start + 1..tok.end).unwrap_or_default();
            max = max.max(digits.parse().unwrap_or(u32::MAX));
        }
    }
    max
}

fn placeholder(out: &mut String, next: &mut u32) {
    *next = next.saturating_add(1);
    out.push('$');
    out.push_str(&next.to_string());
}

/// The statement's tokens joined by single spaces (none inside `a.b`, `f(` or before `,`
/// and `)`), with comments dropped and every literal replaced by `$n`.
pub(crate) fn normalize_tokens(text: &str) -> String {
    let mut next = max_param(text);
    let mut out = String::with_capacity(text.len().min(64 * 1024));
    let mut lexer = Lexer::new(text);
    let mut prev: Option<Token> = None;
    while let Some(tok) = lexer.next_token() {
        let this = text.get(tok.start..tok.end).unwrap_or_default();
        if let Some(p) = prev {
            let before = text.get(p.start..p.end).unwrap_or_default();
            let glued = matches!(before, "(" | "[" | "." | ":")
                || matches!(this, ")" | "]" | "," | "." | ":" | ";")
                || (this == "(" && p.kind == TokenKind::Word);
            if !glued {
                out.push(' ');
            }
        }
        if tok.kind == TokenKind::Literal {
            placeholder(&mut out, &mut next);
        } else {
            out.push_str(this);
        }
        prev = Some(tok);
    }
    out
}

/// `text` with comments removed and any literal left in it replaced by `$n`; the rest
/// (pg_query's spacing and placeholders) is kept as it is.
pub(crate) fn scrub_literals(text: &str) -> String {
    let mut next = max_param(text);
    let mut out = String::with_capacity(text.len());
    let mut lexer = Lexer::new(text);
    let mut copied = 0;
    while let Some(tok) = lexer.next_token() {
        let gap = text.get(copied..tok.start).unwrap_or_default();
        // A gap holding more than whitespace held a comment: keep just one space.
        if gap.bytes().all(|b| b.is_ascii_whitespace()) {
            out.push_str(gap);
        } else {
            out.push(' ');
        }
        if tok.kind == TokenKind::Literal {
            placeholder(&mut out, &mut next);
        } else {
            out.push_str(text.get(tok.start..tok.end).unwrap_or_default());
        }
        copied = tok.end;
    }
    out.trim().to_owned()
}

/// Command type from the leading keywords, for text pg_query did not parse.
pub(crate) fn command_from_keywords(text: &str) -> Command {
    let mut lexer = Lexer::new(text);
    let mut words = std::iter::from_fn(|| lexer.next_token())
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| {
            text.get(t.start..t.end)
                .unwrap_or_default()
                .to_ascii_lowercase()
        });
    let Some(first) = words.next() else {
        return Command::Utility;
    };
    match first.as_str() {
        "select" | "values" | "table" | "with" => Command::Select,
        "insert" => Command::Insert,
        "update" | "merge" => Command::Update,
        "delete" => Command::Delete,
        "copy" => Command::Copy,
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release" => {
            Command::Transaction
        }
        // PREPARE TRANSACTION is two-phase commit; plain PREPARE makes a statement.
        "prepare" if words.next().as_deref() == Some("transaction") => Command::Transaction,
        "create" | "alter" | "drop" | "truncate" | "comment" | "grant" | "revoke" | "cluster"
        | "refresh" | "security" | "import" | "reassign" => Command::Ddl,
        _ => Command::Utility,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_tokens_hide_literals() {
        assert_eq!(
            normalize_tokens("SELEC  a.b, f(1) FROM t /* x */ WHERE c = 'it''s' AND d = $1"),
            "SELEC a.b, f($2) FROM t WHERE c = $3 AND d = $1"
        );
        assert_eq!(normalize_tokens("x = E'\\'' || $$a$$"), "x = $1 || $2");
    }

    #[test]
    fn scrub_keeps_spacing_and_drops_comments() {
        assert_eq!(
            scrub_literals("SELECT $1, 42 /* 'secret' */ FROM t"),
            "SELECT $1, $2 FROM t"
        );
        assert_eq!(scrub_literals("SELECT $1"), "SELECT $1");
    }

    #[test]
    fn keywords_give_a_command() {
        for (sql, cmd) in [
            ("SELEC 1", Command::Utility),
            ("(select 1", Command::Select),
            ("insert into", Command::Insert),
            ("MERGE INTO", Command::Update),
            ("prepare transaction 'x'", Command::Transaction),
            ("prepare p as", Command::Utility),
            ("create tabel", Command::Ddl),
            ("", Command::Utility),
        ] {
            assert_eq!(command_from_keywords(sql), cmd, "{sql}");
        }
    }
}
