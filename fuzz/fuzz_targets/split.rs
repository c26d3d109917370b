//! The statement splitter and shape hash (src/query/split.rs) on arbitrary text.
//!
//! Asserts, beyond "no panic":
//! - statements are non-empty slices of the input, in order and not overlapping, each
//!   from a token's start to a token's end;
//! - the pieces cover the input: every token is inside exactly one statement, except
//!   the `;` that separate them;
//! - a statement split again on its own is one statement with the same text, hash and
//!   depth (so the cache key does not depend on what surrounds a statement);
//! - the hash ignores the case of keywords and identifiers: the ASCII-uppercased input
//!   (without quoted identifiers or dollar quotes, whose case matters) splits at the
//!   same places with the same hashes;
//! - a statement's depth is at most its number of opening brackets.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgsidecar::fuzzing::tokens;
use pgsidecar::query::{split_statements, Statement};

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let sql = sql.as_ref();
    let statements: Vec<Statement<'_>> = split_statements(sql).collect();
    let spans: Vec<(usize, usize)> = statements.iter().map(|s| span_in(sql, s.text)).collect();

    let toks = tokens(sql);
    let mut prev_end = 0;
    for (s, &(start, end)) in statements.iter().zip(&spans) {
        assert!(
            start < end && prev_end <= start,
            "statement {:?} out of order",
            s.text
        );
        assert!(
            toks.iter().any(|t| t.start == start),
            "{:?} starts mid-token",
            s.text
        );
        assert!(
            toks.iter().any(|t| t.end == end),
            "{:?} ends mid-token",
            s.text
        );
        prev_end = end;

        let again: Vec<Statement<'_>> = split_statements(s.text).collect();
        assert_eq!(again.len(), 1, "{:?} splits again into {again:?}", s.text);
        assert_eq!(
            (again[0].text, again[0].hash, again[0].depth),
            (s.text, s.hash, s.depth)
        );

        let opens = s.text.bytes().filter(|b| matches!(b, b'(' | b'[')).count();
        assert!(s.depth as usize <= opens);
    }
    for t in &toks {
        let inside = spans
            .iter()
            .filter(|&&(start, end)| start <= t.start && t.end <= end)
            .count();
        let separator = t.kind == "Semicolon";
        assert!(
            inside == 1 || (inside == 0 && separator),
            "token {t:?} ({:?}) is in {inside} statements",
            &sql[t.start..t.end]
        );
    }

    if !sql.contains('"') && !sql.contains('$') {
        let upper = sql.to_ascii_uppercase();
        let shouted: Vec<(usize, usize, u64)> = split_statements(&upper)
            .map(|s| {
                let (start, end) = span_in(&upper, s.text);
                (start, end, s.hash)
            })
            .collect();
        let quiet: Vec<(usize, usize, u64)> = statements
            .iter()
            .zip(&spans)
            .map(|(s, &(start, end))| (start, end, s.hash))
            .collect();
        assert_eq!(quiet, shouted, "case changed the split or the hashes");
    }
});

/// Where `part`, a slice of `whole`, lies in it.
fn span_in(whole: &str, part: &str) -> (usize, usize) {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    assert!(
        start <= whole.len() && start + part.len() <= whole.len(),
        "not a slice of the input"
    );
    (start, start + part.len())
}
