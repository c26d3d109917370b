//! Tokenizer edge cases: every quoting form, comments, operators, unterminated input.

use crate::query::lexer::{Lexer, TokenKind};

fn kinds(sql: &str) -> Vec<(TokenKind, &str)> {
    let mut lx = Lexer::new(sql);
    std::iter::from_fn(|| lx.next_token())
        .map(|t| (t.kind, &sql[t.start..t.end]))
        .collect()
}

#[test]
fn each_quoting_form_is_one_literal() {
    use TokenKind::*;
    for lit in [
        "'a''b;c'",
        "E'it\\'s; \\\\'",
        "e'x'",
        "U&'d\\0061t'",
        "$$a;b$$",
        "$fn$ $x$ ; $fn$",
        "B'0101'",
        "X'1F'",
        "N'abc'",
        "1",
        "1.5",
        ".5",
        "1e10",
        "1E-5",
        "0x1F",
        "1_000",
    ] {
        assert_eq!(kinds(lit), vec![(Literal, lit)], "{lit}");
    }
    assert_eq!(kinds("\"a\"\"b;\""), vec![(QuotedIdent, "\"a\"\"b;\"")]);
    assert_eq!(kinds("U&\"x\""), vec![(QuotedIdent, "U&\"x\"")]);
    assert_eq!(kinds("$12"), vec![(Param, "$12")]);
}

#[test]
fn comments_and_operators() {
    use TokenKind::*;
    let toks = kinds("a /* x /* nested; */ ; */ <>-- c;\n b.c::int $ x$y");
    assert_eq!(
        toks,
        vec![
            (Word, "a"),
            (Operator, "<>"),
            (Word, "b"),
            (Punct, "."),
            (Word, "c"),
            (Punct, ":"),
            (Punct, ":"),
            (Word, "int"),
            (Punct, "$"),
            (Word, "x$y"),
        ]
    );
    assert_eq!(
        kinds("1+-2"),
        vec![(Literal, "1"), (Operator, "+-"), (Literal, "2")]
    );
    assert_eq!(kinds("x+/*c*/1")[1], (Operator, "+"));
}

#[test]
fn unterminated_forms_run_to_the_end() {
    for sql in [
        "'abc",
        "E'abc\\",
        "\"abc",
        "$q$abc",
        "/* abc /* d */",
        "-- abc",
        "1e",
    ] {
        let toks = kinds(sql);
        assert!(toks.len() <= 2, "{sql}: {toks:?}");
        if let Some(last) = toks.last() {
            assert!(sql.ends_with(last.1), "{sql}");
        }
    }
}
