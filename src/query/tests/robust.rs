//! Hostile input: random bytes, deep nesting, huge statements. Nothing may panic or
//! overflow a stack.

use super::has_literal;
use crate::query::{split_statements, Analyzer, Command};

/// xorshift64*: deterministic, dependency-free randomness for the garbage tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Bytes that matter to the lexer, so random strings hit its edge cases often.
const SQL_BYTES: &[u8] = b"'\"$;()[]-/*eEuUbBxX&\\0123456789.+_ \n\tselectfromwhere,:";

fn random_ascii(rng: &mut Rng) -> String {
    let len = rng.below(60) as usize;
    (0..len)
        .map(|_| {
            if rng.below(3) == 0 {
                char::from(rng.below(128) as u8)
            } else {
                char::from(SQL_BYTES[rng.below(SQL_BYTES.len() as u64) as usize])
            }
        })
        .collect()
}

fn random_utf8(rng: &mut Rng) -> String {
    let len = rng.below(30) as usize;
    (0..len)
        .filter_map(|_| match rng.below(4) {
            0 => char::from_u32(rng.below(0x11_0000) as u32),
            1 => char::from_u32(0x80 + rng.below(0x800) as u32),
            _ => Some(char::from(
                SQL_BYTES[rng.below(SQL_BYTES.len() as u64) as usize],
            )),
        })
        .collect()
}

#[test]
fn random_strings_never_panic() {
    let analyzer = Analyzer::new(1000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let sql = if round % 2 == 0 {
            random_ascii(&mut rng)
        } else {
            random_utf8(&mut rng)
        };
        for stmt in split_statements(&sql) {
            assert!(sql.contains(stmt.text));
            let info = analyzer.analyze(&stmt);
            assert!(
                !has_literal(&info.normalized),
                "{sql:?} -> {}",
                info.normalized
            );
        }
        analyzer.analyze_text(&sql);
    }
}

#[test]
fn deep_nesting_skips_the_parser() {
    let analyzer = Analyzer::new(10);
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    let info = analyzer.analyze_text(&deep);
    assert!(!info.parsed);
    assert_eq!(info.command, Command::Select);
    let unclosed = format!("SELECT {}", "(".repeat(100_000));
    assert!(!analyzer.analyze_text(&unclosed).parsed);
    // Just under the limit pg_query gets it, and may or may not manage.
    let near = format!("SELECT {}1{}", "(".repeat(900), ")".repeat(900));
    let _ = analyzer.analyze_text(&near);
}

#[test]
fn long_but_flat_statements_parse() {
    let analyzer = Analyzer::new(10);
    let ids: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let in_list = format!("SELECT * FROM t WHERE id IN ({})", ids.join(", "));
    let info = analyzer.analyze_text(&in_list);
    assert!(info.parsed);
    assert_eq!(info.tables_read, ["t"]);
    assert!(!has_literal(&info.normalized));
    let big_string = format!("SELECT '{}' FROM t", "x".repeat(1 << 20));
    let info = analyzer.analyze_text(&big_string);
    assert!(
        info.parsed && info.normalized.len() < 100,
        "{}",
        info.normalized.len()
    );
}

#[test]
fn long_operator_chains_do_not_overflow() {
    // No parentheses, so the lexer sees depth 0, yet the parse tree is one level deep
    // per `+`: pg_query must run where that cannot overflow a stack.
    let analyzer = Analyzer::new(10);
    for terms in [100, 10_000, 300_000] {
        let sql = format!("SELECT {}1 FROM t", "1+".repeat(terms));
        let info = analyzer.analyze_text(&sql);
        assert_eq!(info.command, Command::Select, "{terms}");
        assert!(!has_literal(&info.normalized), "{terms}");
        // Past libpg_query's stack budget the statement is analyzed from its tokens.
        assert_eq!(info.parsed, terms == 100, "{terms}");
    }
}
