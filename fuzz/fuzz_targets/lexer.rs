//! The SQL lexer (src/query/lexer.rs) on arbitrary text.
//!
//! Asserts, beyond "no panic" (and no quadratic blow-up, which libFuzzer's timeout
//! catches):
//! - tokens are non-empty, in order, never overlap, and start and end on character
//!   boundaries (the splitter slices the `&str` there);
//! - what lies between tokens is only whitespace and comments (it lexes to nothing);
//! - each token has the shape its kind promises;
//! - lexing is context-free at token starts: a token lexed alone is the same token, and
//!   lexing from a token's start yields the rest of the stream unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgsidecar::fuzzing::{tokens, LexToken};

/// Relexed suffixes per input (each costs a pass over the rest of the input).
const SUFFIX_CHECKS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let sql = sql.as_ref();
    let toks = tokens(sql);
    let mut prev_end = 0;
    for t in &toks {
        assert!(
            prev_end <= t.start && t.start < t.end && t.end <= sql.len(),
            "{t:?}"
        );
        assert!(
            sql.is_char_boundary(t.start) && sql.is_char_boundary(t.end),
            "{t:?}"
        );
        let gap = &sql[prev_end..t.start];
        assert!(tokens(gap).is_empty(), "not trivia before {t:?}: {gap:?}");
        check_shape(&sql[t.start..t.end], t);
        let alone = tokens(&sql[t.start..t.end]);
        let expected = LexToken {
            start: 0,
            end: t.end - t.start,
            ..*t
        };
        assert_eq!(alone, [expected], "lexed alone, {t:?} differs");
        prev_end = t.end;
    }
    assert!(tokens(&sql[prev_end..]).is_empty(), "not trivia at the end");

    let step = (toks.len() / SUFFIX_CHECKS).max(1);
    for t in toks.iter().step_by(step) {
        let from = t.start;
        let rest: Vec<LexToken> = tokens(&sql[from..])
            .into_iter()
            .map(|r| LexToken {
                start: r.start + from,
                end: r.end + from,
                ..r
            })
            .collect();
        let idx = toks.iter().position(|x| x.start == from).unwrap_or(0);
        assert_eq!(rest, toks[idx..], "lexing from {from} changes the stream");
    }
});

fn is_op(b: u8) -> bool {
    b"+-*/<>=~!@#%^&|`?".contains(&b)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn check_shape(text: &str, t: &LexToken) {
    let b = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    match t.kind {
        "Semicolon" => assert_eq!(text, ";"),
        "Param" => {
            assert!(b[0] == b'$' && b.len() > 1 && b[1..].iter().all(u8::is_ascii_digit))
        }
        "Word" => {
            assert!(
                b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] >= 0x80,
                "{t:?}"
            );
            assert!(b.iter().all(|&c| is_ident(c)), "{t:?} {text:?}");
        }
        "QuotedIdent" => assert!(b[0] == b'"' || lower.starts_with("u&\""), "{text:?}"),
        "Operator" => {
            assert!(b.iter().all(|&c| is_op(c)), "{text:?}");
            assert!(
                !text[1..].contains("--") && !text[1..].contains("/*"),
                "{text:?}"
            );
        }
        "Punct" => assert_eq!(b.len(), 1, "{text:?}"),
        "Literal" => {
            let quoted = b[0] == b'\''
                || b[0] == b'$'
                || (b.len() > 1 && b"ebxnEBXN".contains(&b[0]) && b[1] == b'\'')
                || lower.starts_with("u&'");
            let number = b[0].is_ascii_digit() || (b[0] == b'.' && b.len() > 1);
            assert!(quoted || number, "{t:?} {text:?}");
        }
        other => panic!("unknown token kind {other}"),
    }
}
