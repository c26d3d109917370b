//! Statement splitting and shape hashing.

use crate::query::{split_statements, Statement};

fn texts(sql: &str) -> Vec<&str> {
    split_statements(sql).map(|s| s.text).collect()
}

fn one(sql: &str) -> Statement<'_> {
    let all: Vec<_> = split_statements(sql).collect();
    assert_eq!(all.len(), 1, "{sql}: {all:?}");
    all[0]
}

#[test]
fn splits_at_top_level_semicolons_only() {
    assert_eq!(
        texts("SELECT 1; ;; \n SELECT 'a;b' ; /* ; */ -- ;\n ; SELECT $q$;$q$;"),
        vec!["SELECT 1", "SELECT 'a;b'", "SELECT $q$;$q$"]
    );
    assert_eq!(
        texts("SELECT E'\\';' ; SELECT \"x;\"; SELECT /* a /* ; */ ; */ 2"),
        vec![
            "SELECT E'\\';'",
            "SELECT \"x;\"",
            "SELECT /* a /* ; */ ; */ 2"
        ]
    );
    // Rule actions and SQL-standard routine bodies contain `;` that do not split.
    assert_eq!(
        texts("CREATE RULE r AS ON INSERT TO t DO (INSERT INTO a VALUES (1); DELETE FROM b); SELECT 1"),
        vec![
            "CREATE RULE r AS ON INSERT TO t DO (INSERT INTO a VALUES (1); DELETE FROM b)",
            "SELECT 1"
        ]
    );
    let body = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql \
                BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END";
    assert_eq!(texts(&format!("{body}; SELECT 3")), vec![body, "SELECT 3"]);
}

#[test]
fn empty_inputs_have_no_statements() {
    for sql in [
        "",
        ";",
        ";;",
        "  \n\t",
        "-- only a comment",
        "/* c */ ; /* d */",
        "/* open",
    ] {
        assert_eq!(split_statements(sql).count(), 0, "{sql:?}");
    }
}

#[test]
fn unterminated_quotes_still_make_a_statement() {
    for sql in [
        "SELECT 'abc",
        "SELECT E'abc\\'",
        "SELECT \"abc",
        "SELECT $a$ abc",
        "SELECT 1 /* abc",
    ] {
        assert!(one(sql).text.starts_with("SELECT"), "{sql}");
    }
    assert_eq!(texts("SELECT 'a; SELECT 2"), vec!["SELECT 'a; SELECT 2"]);
}

#[test]
fn literals_do_not_change_the_hash() {
    let same = [
        (
            "SELECT * FROM t WHERE a = 1 AND b = 'x'",
            "select *  from T where a = 42.5e3 and b = E'it\\'s' -- c",
        ),
        ("SELECT $$x$$, B'01'", "SELECT $f$y;$f$, X'FF'"),
        ("SELECT .5, U&'a'", "SELECT 0x1F, N'b'"),
        ("UPDATE t SET a = $1", "UPDATE t SET a = 7"),
        // IN lists and multi-row VALUES fold, as pg_query's fingerprint does.
        ("SELECT 1 WHERE a IN (1, 2, 3)", "SELECT 1 WHERE a IN ('x')"),
        (
            "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            "INSERT INTO t VALUES ($1, $2)",
        ),
    ];
    for (a, b) in same {
        assert_eq!(one(a).hash, one(b).hash, "{a} vs {b}");
    }
}

#[test]
fn different_shapes_hash_differently() {
    let shapes = [
        "SELECT * FROM t WHERE a = 1",
        "SELECT * FROM t WHERE b = 1",
        "SELECT * FROM u WHERE a = 1",
        "SELECT * FROM t WHERE a > 1",
        "SELECT * FROM t WHERE a = 1 AND b = 2",
        "SELECT * FROM \"T\" WHERE a = 1",
        "SELECT * FROM t WHERE a = '1'::int",
        "SELECT * FROM t WHERE a IN (1, x)",
        "SELECT * FROM t WHERE a IN (x, 1)",
        "SELECT ARRAY[1, 2]",
        "SELECT ARRAY[1, 2, 3]",
        "SELECT f((1))",
        "SELECT f(1)",
    ];
    let hashes: Vec<u64> = shapes.iter().map(|s| one(s).hash).collect();
    for i in 0..hashes.len() {
        for j in i + 1..hashes.len() {
            assert_ne!(hashes[i], hashes[j], "{} vs {}", shapes[i], shapes[j]);
        }
    }
}

#[test]
fn depth_counts_parentheses_and_brackets() {
    assert_eq!(one("SELECT 1").depth, 0);
    assert_eq!(one("SELECT f((1), (2))").depth, 2);
    assert_eq!(one("SELECT a[(1)]").depth, 2);
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(one(&deep).depth, 5000);
    // Unbalanced text neither panics nor underflows.
    assert_eq!(one("SELECT ))) (").depth, 1);
}

#[test]
fn statement_text_excludes_surrounding_comments() {
    let s: Vec<_> = split_statements("/* app */ SELECT 1 -- trailing\n;\nSELECT 2").collect();
    assert_eq!(s[0].text, "SELECT 1");
    assert_eq!(s[1].text, "SELECT 2");
    assert_eq!(s[0].hash, s[1].hash);
}
